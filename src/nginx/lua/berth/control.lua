-- The control endpoint's `/backends`: the agent replaces the whole backend set with
-- PUT and reads it back with GET. Everything is validated before anything is stored,
-- so a bad body changes nothing.
local cjson = require("cjson.safe")
local store = require("berth.store")

-- The rules of src/api/rules.ts (BACKEND_NAME, COOKIE_NAME, BACKEND_RANGES), in the same
-- words; test/support/control-cases.ts holds the cases both must judge alike.
local MAX_NAME = 253
local MAX_COOKIE = 64
local MAX_WEIGHT = 1000000
local MAX_AGE = 2147483647
local MAX_PORT = 65535
local NAME_RULE = 'must be a name: lower-case letters, digits, "-" and ".", '
    .. 'starting and ending with a letter or digit, at most ' .. MAX_NAME .. ' characters'
local COOKIE_RULE = 'must be a cookie name: 1 to ' .. MAX_COOKIE .. ' letters, digits and "_"'
-- HEADER_NAME, MATCH_VALUE, MATCH_REGEX and REQUEST_MATCH_LIMIT of src/api/rules.ts.
local MAX_HEADER = 64
local MAX_VALUE = 256
local MAX_MATCHES = 8
local HEADER_RULE = 'must be a header name: 1 to ' .. MAX_HEADER
    .. ' letters, digits and "-", starting and ending with a letter or digit'
local VALUE_RULE = 'must be a header or cookie value: 1 to ' .. MAX_VALUE .. ' printable ASCII characters or spaces'
local REGEX_RULE = 'must be a regular expression of at most 256 characters, matched against the whole value: '
    .. 'letters, digits, spaces, punctuation and the operators star, plus, question mark, bar, parentheses, '
    .. 'brackets, caret and dollar; a backslash only before punctuation or before d, w or s (and their capitals); '
    .. 'no repetition counts in braces, no "(?" extensions, no empty or POSIX brackets, no stacked quantifiers'
local COMPILES_RULE = 'must be a regular expression that compiles: every ( closed by ), every [ by ], '
    .. 'an operator * + ? only after something to repeat'
-- The form of MATCH_REGEX, as PCRE reads the same patterns.
local REGEX_FORM = [=[^([-A-Za-z0-9 .,:;=@!%&#~_\/'"<>*+?|()\[\]^$]|\\[dwsDWS.*+?|()\[\]^$\\\/-])+$]=]
local REGEX_EXCLUDES = {
    [=[\(\?]=], [=[\[\^?\]]=], [=[\[[:.=]]=], [=[-\\]=], [=[[*+?][*+]]=], [=[[*+?]\?[*+?]]=],
    [=[^\^?[*+?]]=], [=[[(|]\^?[*+?]]=], [=[(^|[^[])[\^$][*+?]]=],
}

local M = {}

local function respond(status, body, content_type)
    ngx.status = status
    ngx.header["Content-Type"] = content_type or "text/plain"
    ngx.print(body)
    return ngx.exit(status)
end

local function is_name(value)
    return type(value) == "string"
        and #value <= MAX_NAME
        and value:find("^[a-z0-9][-a-z0-9.]*$") ~= nil
        and value:find("[a-z0-9]$") ~= nil
end

local function is_integer(value, min, max)
    return type(value) == "number" and value == math.floor(value) and value >= min and value <= max
end

local function whole_number(min, max)
    return "must be a whole number from " .. min .. " to " .. max
end

local function is_ipv4(value)
    local a, b, c, d = value:match("^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$")
    return a ~= nil and tonumber(a) <= 255 and tonumber(b) <= 255 and tonumber(c) <= 255 and tonumber(d) <= 255
end

-- Only literal addresses: the balancer connects to what it is given and never resolves.
local function is_address(value)
    if type(value) ~= "string" then
        return false
    end
    return is_ipv4(value) or (#value <= 45 and value:find(":", 1, true) ~= nil and value:find("^[%x:.]+$") ~= nil)
end

-- cjson decodes `[]` and `{}` alike, so an empty object passes as an empty list.
local function is_array(value)
    if type(value) ~= "table" then
        return false
    end
    local count = 0
    for _ in pairs(value) do
        count = count + 1
    end
    return count == #value
end

local function is_object(value)
    return type(value) == "table" and (next(value) == nil or not is_array(value))
end

local function optional(value)
    if value == cjson.null then
        return nil
    end
    return value
end

-- Unknown fields are refused: a misspelt field would otherwise be dropped silently.
local function check_fields(object, allowed, path)
    for key in pairs(object) do
        if not allowed[key] then
            return path .. "." .. tostring(key) .. ": unknown field"
        end
    end
end

-- Why `value` is not an object with only the `allowed` fields, or nil.
local function object_error(value, allowed, path)
    if not is_object(value) then
        return path .. ": must be an object"
    end
    return check_fields(value, allowed, path)
end

local function check_sticky(sticky, path)
    local err = object_error(sticky, { cookie = true, maxAgeSeconds = true, scope = true }, path)
    if err then
        return nil, err
    end
    if type(sticky.cookie) ~= "string" or #sticky.cookie > MAX_COOKIE or not sticky.cookie:find("^[A-Za-z0-9_]+$") then
        return nil, path .. ".cookie: " .. COOKIE_RULE
    end
    local max_age = optional(sticky.maxAgeSeconds)
    if max_age ~= nil and not is_integer(max_age, 1, MAX_AGE) then
        return nil, path .. ".maxAgeSeconds: " .. whole_number(1, MAX_AGE)
    end
    local scope = optional(sticky.scope)
    if scope ~= nil and scope ~= "version" then
        return nil, path .. '.scope: must be "version", or left out for the endpoint'
    end
    return { cookie = sticky.cookie, maxAgeSeconds = max_age, scope = scope }
end

local function is_text(value, max)
    return type(value) == "string" and #value >= 1 and #value <= max
end

-- MATCH_REGEX: its form, then that PCRE compiles it (as JavaScript and RE2 do in that form).
local function is_regex(value)
    if not is_text(value, MAX_VALUE) or not ngx.re.find(value, REGEX_FORM, "jo") then
        return false, REGEX_RULE
    end
    for _, excluded in ipairs(REGEX_EXCLUDES) do
        if ngx.re.find(value, excluded, "jo") then
            return false, REGEX_RULE
        end
    end
    local _, _, err = ngx.re.find("", value, "j")
    if err then
        return false, COMPILES_RULE
    end
    return true
end

local function check_value(value, path)
    local err = object_error(value, { exact = true, prefix = true, regex = true }, path)
    if err then
        return nil, err
    end
    local kind, given = nil, 0
    for _, key in ipairs({ "exact", "prefix", "regex" }) do
        if optional(value[key]) ~= nil then
            kind, given = key, given + 1
        end
    end
    if given ~= 1 then
        return nil, path .. ": value gives exactly one of exact, prefix or regex"
    end
    local text = value[kind]
    if kind == "regex" then
        local ok, rule = is_regex(text)
        if not ok then
            return nil, path .. ".regex: " .. rule
        end
    elseif not is_text(text, MAX_VALUE) or not text:find("^[ -~]+$") then
        return nil, path .. "." .. kind .. ": " .. VALUE_RULE
    end
    return { kind = kind, text = text }
end

local function check_match(match, path)
    local err = object_error(match, { header = true, cookie = true, value = true }, path)
    if err then
        return nil, err
    end
    local header, cookie = optional(match.header), optional(match.cookie)
    if (header == nil) == (cookie == nil) then
        return nil, path .. ": a match names either a header or a cookie (exactly one of the two)"
    end
    if header ~= nil and not (is_text(header, MAX_HEADER) and header:find("^[A-Za-z0-9]")
            and header:find("[A-Za-z0-9]$") and not header:find("[^-A-Za-z0-9]")) then
        return nil, path .. ".header: " .. HEADER_RULE
    end
    if cookie ~= nil and not (is_text(cookie, MAX_COOKIE) and cookie:find("^[A-Za-z0-9_]+$")) then
        return nil, path .. ".cookie: " .. COOKIE_RULE
    end
    local value
    value, err = check_value(match.value, path .. ".value")
    if not value then
        return nil, err
    end
    return { header = header, cookie = cookie, value = value }
end

local function check_header_route(route, path, groups)
    local err = object_error(route, { group = true, match = true }, path)
    if err then
        return nil, err
    end
    if not groups[route.group] then
        return nil, path .. ".group: must name a group of the backend"
    end
    if not is_array(route.match) or #route.match < 1 or #route.match > MAX_MATCHES then
        return nil, path .. ".match: must be a list of 1 to " .. MAX_MATCHES .. " conditions"
    end
    local checked = {}
    for i, match in ipairs(route.match) do
        checked[i], err = check_match(match, path .. ".match[" .. (i - 1) .. "]")
        if not checked[i] then
            return nil, err
        end
    end
    return { group = route.group, match = checked }
end

local function check_endpoints(endpoints, path)
    if not is_array(endpoints) then
        return nil, path .. ": must be a list"
    end
    local checked = {}
    for i, endpoint in ipairs(endpoints) do
        local at = path .. "[" .. (i - 1) .. "]"
        local err = object_error(endpoint, { address = true, port = true }, at)
        if err then
            return nil, err
        end
        if not is_address(endpoint.address) then
            return nil, at .. ".address: must be an IPv4 or IPv6 address"
        end
        if not is_integer(endpoint.port, 1, MAX_PORT) then
            return nil, at .. ".port: " .. whole_number(1, MAX_PORT)
        end
        checked[#checked + 1] = { address = endpoint.address, port = endpoint.port }
    end
    -- Sorted and deduplicated so that the same endpoints in another order (or an endpoint
    -- listed twice while EndpointSlices change over) store the same JSON and bump nothing.
    table.sort(checked, function(a, b)
        if a.address ~= b.address then
            return a.address < b.address
        end
        return a.port < b.port
    end)
    local unique = {}
    for _, endpoint in ipairs(checked) do
        local last = unique[#unique]
        if not last or last.address ~= endpoint.address or last.port ~= endpoint.port then
            unique[#unique + 1] = endpoint
        end
    end
    return unique
end

local function check_groups(groups, path)
    if not is_array(groups) then
        return nil, path .. ": must be a list"
    end
    local checked, seen = {}, {}
    for i, group in ipairs(groups) do
        local at = path .. "[" .. (i - 1) .. "]"
        local err = object_error(group, { name = true, weight = true, keepSessions = true, endpoints = true }, at)
        if err then
            return nil, err
        end
        if not is_name(group.name) then
            return nil, at .. ".name: " .. NAME_RULE
        end
        if seen[group.name] then
            return nil, at .. ".name: duplicate group " .. group.name
        end
        seen[group.name] = true
        local weight = optional(group.weight)
        if weight ~= nil and not is_integer(weight, 0, MAX_WEIGHT) then
            return nil, at .. ".weight: " .. whole_number(0, MAX_WEIGHT)
        end
        local keep_sessions = optional(group.keepSessions)
        if keep_sessions ~= nil and keep_sessions ~= false then
            return nil, at .. ".keepSessions: must be false, or left out"
        end
        local endpoints
        endpoints, err = check_endpoints(group.endpoints, at .. ".endpoints")
        if not endpoints then
            return nil, err
        end
        checked[i] = { name = group.name, weight = weight, keep_sessions = keep_sessions, endpoints = endpoints }
    end
    return checked, seen
end

local function check_backend(backend, path)
    local err = object_error(backend,
        { name = true, sticky = true, headerRoute = true, previewVersions = true, groups = true }, path)
    if err then
        return nil, err
    end
    if not is_name(backend.name) then
        return nil, path .. ".name: " .. NAME_RULE
    end
    local sticky
    if optional(backend.sticky) ~= nil then
        sticky, err = check_sticky(backend.sticky, path .. ".sticky")
        if not sticky then
            return nil, err
        end
    end
    local groups, names
    groups, names = check_groups(backend.groups, path .. ".groups")
    if not groups then
        return nil, names
    end
    local header_route
    if optional(backend.headerRoute) ~= nil then
        header_route, err = check_header_route(backend.headerRoute, path .. ".headerRoute", names)
        if not header_route then
            return nil, err
        end
    end
    local preview = optional(backend.previewVersions)
    if preview ~= nil and preview ~= true then
        return nil, path .. ".previewVersions: must be true, or left out"
    end
    return { name = backend.name, sticky = sticky, header_route = header_route, preview = preview, groups = groups }
end

local function encode_header_route(route)
    if not route then
        return ""
    end
    local matches = {}
    for i, match in ipairs(route.match) do
        local subject = match.header and ('"header":' .. cjson.encode(match.header))
            or ('"cookie":' .. cjson.encode(match.cookie))
        matches[i] = string.format('{%s,"value":{"%s":%s}}', subject, match.value.kind, cjson.encode(match.value.text))
    end
    return string.format('"headerRoute":{"group":%s,"match":[%s]},',
        cjson.encode(route.group), table.concat(matches, ","))
end

-- Written by hand with a fixed field order: equal backends must give equal strings, or
-- every PUT would bump every version.
local function encode(backend)
    local groups = {}
    for i, group in ipairs(backend.groups) do
        local endpoints = {}
        for j, endpoint in ipairs(group.endpoints) do
            endpoints[j] = string.format('{"address":%s,"port":%d}', cjson.encode(endpoint.address), endpoint.port)
        end
        local weight = group.weight and string.format('"weight":%d,', group.weight) or ""
        local keep_sessions = group.keep_sessions == false and '"keepSessions":false,' or ""
        groups[i] = string.format('{"name":%s,%s%s"endpoints":[%s]}',
            cjson.encode(group.name), weight, keep_sessions, table.concat(endpoints, ","))
    end
    local sticky = ""
    if backend.sticky then
        local max_age = backend.sticky.maxAgeSeconds
        sticky = string.format('"sticky":{"cookie":%s%s%s},', cjson.encode(backend.sticky.cookie),
            max_age and string.format(',"maxAgeSeconds":%d', max_age) or "",
            backend.sticky.scope and ',"scope":"version"' or "")
    end
    return string.format('{"name":%s,%s%s%s"groups":[%s]}', cjson.encode(backend.name), sticky,
        encode_header_route(backend.header_route), backend.preview and '"previewVersions":true,' or "",
        table.concat(groups, ","))
end

local function parse(body)
    local decoded, err = cjson.decode(body)
    if decoded == nil then
        return nil, "body is not JSON: " .. tostring(err)
    end
    if not is_object(decoded) then
        return nil, "body must be an object with a `backends` list"
    end
    err = check_fields(decoded, { backends = true }, "body")
    if err then
        return nil, err
    end
    if not is_array(decoded.backends) then
        return nil, "body.backends: must be a list"
    end
    local backends, seen = {}, {}
    for i, backend in ipairs(decoded.backends) do
        local path = "body.backends[" .. (i - 1) .. "]"
        local checked
        checked, err = check_backend(backend, path)
        if not checked then
            return nil, err
        end
        if seen[checked.name] then
            return nil, path .. ".name: duplicate backend " .. checked.name
        end
        seen[checked.name] = true
        backends[i] = { name = checked.name, json = encode(checked) }
    end
    return backends
end

-- A body larger than client_body_buffer_size is spooled to a file instead of memory.
local function read_body()
    ngx.req.read_body()
    local data = ngx.req.get_body_data()
    if data then
        return data
    end
    local path = ngx.req.get_body_file()
    if not path then
        return nil
    end
    local file, err = io.open(path, "rb")
    if not file then
        error("reading the spooled request body: " .. err)
    end
    data = file:read("*a")
    file:close()
    return data
end

local function put()
    local body = read_body()
    if not body then
        return respond(400, "body is empty\n")
    end
    local backends, err = parse(body)
    if not backends then
        return respond(400, err .. "\n")
    end
    local result, busy
    result, err, busy = store.replace(backends)
    if not result then
        ngx.log(ngx.ERR, "berth: PUT /backends: ", err)
        return respond(busy and 409 or 500, err .. "\n")
    end
    return respond(200, string.format('{"changed":%d,"removed":%d,"total":%d}\n',
        result.changed, result.removed, result.total), "application/json")
end

local function get()
    local encoded = {}
    for _, name in ipairs(store.names()) do
        encoded[#encoded + 1] = store.encoded(name)
    end
    return respond(200, '{"backends":[' .. table.concat(encoded, ",") .. ']}\n', "application/json")
end

function M.backends()
    local method = ngx.req.get_method()
    if method == "PUT" then
        return put()
    elseif method == "GET" then
        return get()
    end
    ngx.header["Allow"] = "GET, PUT"
    return respond(405, "use GET or PUT\n")
end

return M
