-- Picks the peer for every proxied HTTP request from the backend set the agent pushed
-- (see berth.store). access() runs in the access phase: it answers 503 itself when the
-- backend has no endpoints (a 503 from the balancer phase would turn into a 500) and
-- resolves stickiness while response headers can still be set. balance() runs in
-- balancer_by_lua for every attempt, including retries on other peers.
local ngx_balancer = require("ngx.balancer")
local cjson = require("cjson.safe")
local store = require("berth.store")
local counters = require("berth.counters")

-- nginx's max_fails/fail_timeout do not apply to peers chosen in Lua, so the same rule
-- lives here: MAX_FAILS failures within FAIL_TIMEOUT seconds skip a peer for
-- FAIL_TIMEOUT seconds. Counted per worker.
local MAX_FAILS = 3
local FAIL_TIMEOUT = 10
-- Attempts after the first, each on a peer not yet tried for the request.
local MAX_RETRIES = 2

local M = {}

-- name -> { version = <store version>, backend = <built backend> }
local cache = {}
-- "host:port" -> { count = <failures>, since = <time of the first one> }
local failures = {}
-- "host:port" -> time until which the peer is skipped
local ejected = {}
-- header-route patterns whose failure was logged, so that each is logged once
local failed_patterns = {}

-- set_current_peer parses its host as nginx parses a URL, so IPv6 needs brackets.
local function host_of(address)
    if address:find(":", 1, true) then
        return "[" .. address .. "]"
    end
    return address
end

-- A set of groups to pick from: every group's endpoints by cookie and the number of
-- distinct peers, which bounds the retries.
local function pool_of(groups)
    local by_cookie, peers, peer_count = {}, {}, 0
    for _, group in ipairs(groups) do
        for _, endpoint in ipairs(group.endpoints) do
            by_cookie[endpoint.cookie] = endpoint
            if not peers[endpoint.peer] then
                peers[endpoint.peer] = true
                peer_count = peer_count + 1
            end
        end
    end
    return { groups = groups, by_cookie = by_cookie, peer_count = peer_count }
end

-- A header route's conditions, ready to test: each reads one nginx variable.
local function build_matches(match)
    local built = {}
    for i, condition in ipairs(match) do
        local variable = condition.header and ("http_" .. condition.header:lower():gsub("%-", "_"))
            or ("cookie_" .. condition.cookie)
        local kind, text = next(condition.value)
        -- A regex matches the whole value.
        built[i] = { variable = variable, kind = kind, text = kind == "regex" and ("^(?:" .. text .. ")$") or text }
    end
    return built
end

-- Groups that can take no traffic are left out of the weighted pool; every group with
-- endpoints also gets a pool of its own, for requests routed to its Version. Each
-- endpoint carries a short hash as its sticky-cookie value, so the cookie does not
-- reveal pod addresses.
local function build(decoded)
    local weighted, by_group = {}, {}
    for _, group in ipairs(decoded.groups) do
        local endpoints = {}
        for i, endpoint in ipairs(group.endpoints) do
            local host = host_of(endpoint.address)
            local peer = host .. ":" .. endpoint.port
            endpoints[i] = {
                host = host,
                port = endpoint.port,
                peer = peer,
                cookie = ngx.md5(peer):sub(1, 16),
                -- The Version the request is counted under (berth.counters).
                group = group.name or "",
            }
        end
        local weight = group.weight or #endpoints
        local entry = { keep_sessions = group.keepSessions ~= false }
        if #endpoints > 0 then
            local built = {
                weight = weight,
                current = 0,
                endpoints = endpoints,
                -- Workers start at different endpoints instead of all hitting the first.
                next = math.random(#endpoints),
            }
            -- Alone in its pool the group's weight only has to be positive.
            entry.pool = pool_of({ { weight = 1, current = 0, endpoints = endpoints, next = built.next } })
            if weight > 0 then
                weighted[#weighted + 1] = built
            end
        end
        by_group[group.name] = entry
    end
    local backend = pool_of(weighted)
    backend.by_group = by_group
    backend.preview_versions = decoded.previewVersions == true
    if decoded.headerRoute then
        backend.header_route = { group = decoded.headerRoute.group, match = build_matches(decoded.headerRoute.match) }
    end
    local sticky = decoded.sticky
    if sticky then
        local attributes = "; Path=/; HttpOnly; SameSite=Lax"
        if sticky.maxAgeSeconds then
            attributes = "; Max-Age=" .. sticky.maxAgeSeconds .. attributes
        end
        backend.sticky_cookie = sticky.cookie
        backend.cookie_attributes = attributes
        backend.sticky_to_version = sticky.scope == "version"
    end
    return backend
end

-- One shared-dict read per request; the backend is decoded again only when its version
-- moved, and a backend the dict does not hold (removed, or the dict was wiped) is unknown.
local function get_backend(name)
    local version = store.version(name)
    local entry = cache[name]
    if not version then
        cache[name] = nil
        return nil
    end
    if entry and entry.version == version then
        return entry.backend
    end
    local json = store.encoded(name)
    if not json then
        cache[name] = nil
        return nil
    end
    local decoded, err = cjson.decode(json)
    if not decoded then
        ngx.log(ngx.ERR, "berth: stored backend ", name, " is not JSON: ", err)
        return nil
    end
    local backend = build(decoded)
    cache[name] = { version = version, backend = backend }
    return backend
end

-- `now` nil ignores ejection: when every peer is ejected, trying one beats refusing.
local function available(endpoint, now, tried)
    if tried and tried[endpoint.peer] then
        return false
    end
    return not (now and ejected[endpoint.peer] and ejected[endpoint.peer] > now)
end

local function pick_in_group(group, now, tried)
    local endpoints = group.endpoints
    local count = #endpoints
    for _ = 1, count do
        local endpoint = endpoints[group.next]
        group.next = group.next % count + 1
        if available(endpoint, now, tried) then
            return endpoint
        end
    end
end

-- Smooth weighted round-robin across groups, as nginx does for weighted servers: each
-- candidate gains its weight, the leader is picked and pays back the total, so a 90/10
-- split interleaves instead of sending nine in a row. A group whose endpoints are all
-- unavailable drops out and the choice is made again among the rest.
local function pick(backend, now, tried)
    local excluded = {}
    for _ = 1, #backend.groups do
        local best, total = nil, 0
        for _, group in ipairs(backend.groups) do
            if not excluded[group] then
                group.current = group.current + group.weight
                total = total + group.weight
                if not best or group.current > best.current then
                    best = group
                end
            end
        end
        if not best then
            return nil
        end
        best.current = best.current - total
        local endpoint = pick_in_group(best, now, tried)
        if endpoint then
            return endpoint
        end
        excluded[best] = true
    end
end

local function record_failure(peer, now)
    local entry = failures[peer]
    if not entry or now - entry.since >= FAIL_TIMEOUT then
        entry = { count = 0, since = now }
        failures[peer] = entry
    end
    entry.count = entry.count + 1
    if entry.count >= MAX_FAILS then
        failures[peer] = nil
        ejected[peer] = now + FAIL_TIMEOUT
        ngx.log(ngx.WARN, "berth: ", peer, " failed ", MAX_FAILS, " times; skipping it for ", FAIL_TIMEOUT, " s")
    end
end

local function set_cookie(backend, value)
    ngx.header["Set-Cookie"] = backend.sticky_cookie .. "=" .. value .. backend.cookie_attributes
end

-- A cookie naming an endpoint of the pool that is still present and not ejected keeps the
-- client there; otherwise the client is given a new endpoint and a cookie naming it.
local function sticky_endpoint(backend, pool)
    local now = ngx.now()
    local endpoint = pool.by_cookie[ngx.var["cookie_" .. backend.sticky_cookie] or ""]
    if endpoint and available(endpoint, now) then
        return endpoint
    end
    endpoint = pick(pool, now) or pick(pool)
    set_cookie(backend, endpoint.cookie)
    return endpoint
end

-- A version-sticky cookie names a group: the client stays on that Version while it has
-- endpoints and keeps its sessions. Otherwise a Version is picked by weight and named in
-- a new cookie; its first endpoint is the one the weighted pick chose.
local function sticky_version(backend)
    local entry = backend.by_group[ngx.var["cookie_" .. backend.sticky_cookie] or ""]
    if entry and entry.pool and entry.keep_sessions then
        return entry.pool
    end
    if backend.peer_count == 0 then
        return backend
    end
    local endpoint = pick(backend, ngx.now()) or pick(backend)
    set_cookie(backend, endpoint.group)
    return backend.by_group[endpoint.group].pool, endpoint
end

local function condition_holds(condition)
    local value = ngx.var[condition.variable]
    if not value then
        return false
    end
    if condition.kind == "exact" then
        return value == condition.text
    elseif condition.kind == "prefix" then
        return value:sub(1, #condition.text) == condition.text
    end
    -- Compiled once per worker ("o"); a pattern that fails, or passes the match limit,
    -- is no match, never an error for the request. Said once per pattern and worker:
    -- clients choose the values, and must not be able to flood the log.
    local from, _, err = ngx.re.find(value, condition.text, "jo")
    if err and not failed_patterns[condition.text] then
        failed_patterns[condition.text] = true
        ngx.log(ngx.WARN, "berth: header route pattern ", condition.text, " failed (counted as no match): ", err)
    end
    return from ~= nil
end

local function header_route_holds(route)
    for _, condition in ipairs(route.match) do
        if not condition_holds(condition) then
            return false
        end
    end
    return true
end

-- The Version a request is routed to, whatever the weights, with `true` when it must be
-- that one (a preview host) rather than preferably (a header route): the entry of the
-- group, or nil for the weighted pick.
local function routed_group(backend)
    if backend.preview_versions then
        local server = ngx.var.server_name
        if server:sub(1, 2) == "*." then
            local host, suffix = ngx.var.host, server:sub(2)
            local label = host:sub(1, #host - #suffix)
            local under = #host > #suffix and host:sub(-#suffix) == suffix
            if under and not label:find(".", 1, true) and backend.by_group[label] then
                return backend.by_group[label], true
            end
        end
    end
    local route = backend.header_route
    if route and backend.by_group[route.group] and header_route_holds(route) then
        return backend.by_group[route.group], false
    end
end

-- The pool the request is balanced over (nil: a preview host whose Version has no
-- endpoints), and the endpoint of its first attempt when already chosen.
local function choose_pool(backend)
    local entry, only = routed_group(backend)
    if entry and (entry.pool or only) then
        return entry.pool
    end
    if backend.sticky_to_version then
        return sticky_version(backend)
    end
    return backend
end

-- The answer for a backend nginx cannot send to (unknown: not pushed yet, or the dict was
-- wiped; no endpoints; or its stored entry could not be read). The status is set before
-- the body goes out; ngx.exit(ngx.HTTP_OK) then ends the request with what was sent,
-- where an error status after a sent body would ask nginx for an error page of its own.
local function unavailable()
    ngx.status = ngx.HTTP_SERVICE_UNAVAILABLE
    ngx.header["Content-Type"] = "text/plain"
    ngx.say("no endpoints available")
    return ngx.exit(ngx.HTTP_OK)
end

function M.access()
    local name = ngx.var.berth_backend
    local ok, backend = pcall(get_backend, name)
    if not ok then
        -- A request must never see a 500 for a backend it merely cannot reach yet.
        ngx.log(ngx.ERR, "berth: reading backend ", tostring(name), ": ", backend)
        return unavailable()
    end
    if not backend then
        return unavailable()
    end
    local routed, pool, first = pcall(choose_pool, backend)
    if not routed then
        -- A route that cannot be followed leaves the request to the weights.
        ngx.log(ngx.ERR, "berth: routing a request of backend ", name, ": ", pool)
        pool, first = backend, nil
    end
    if not pool or pool.peer_count == 0 then
        return unavailable()
    end
    local ctx = { backend = pool, name = name, first = first }
    if backend.sticky_cookie and not backend.sticky_to_version and not first then
        ctx.first = sticky_endpoint(backend, pool)
    end
    ngx.ctx.berth = ctx
end

function M.balance()
    local ctx = ngx.ctx.berth
    if not ctx then
        ngx.log(ngx.ERR, "berth: balancer without berth.balancer.access() in the access phase")
        return ngx.exit(ngx.ERROR)
    end
    local backend = ctx.backend
    local now = ngx.now()
    local endpoint
    if ctx.tried then
        if ngx_balancer.get_last_failure() then
            record_failure(ctx.last.peer, now)
            counters.failed_attempt(ctx)
        end
        endpoint = pick(backend, now, ctx.tried) or pick(backend, nil, ctx.tried)
    else
        ctx.tried = {}
        local retries = math.min(backend.peer_count - 1, MAX_RETRIES)
        if retries > 0 then
            local ok, err = ngx_balancer.set_more_tries(retries)
            if not ok then
                ngx.log(ngx.ERR, "berth: set_more_tries: ", err)
            end
        end
        endpoint = ctx.first or pick(backend, now) or pick(backend)
    end
    -- Retries never outnumber the peers, so a peer not yet tried always remains.
    if not endpoint then
        ngx.log(ngx.ERR, "berth: no peer left to try")
        return ngx.exit(ngx.ERROR)
    end
    ctx.tried[endpoint.peer] = true
    ctx.last = endpoint
    -- When this attempt started: berth.counters times each attempt on its own.
    ctx.attempt_started = now
    local ok, err = ngx_balancer.set_current_peer(endpoint.host, endpoint.port)
    if not ok then
        ngx.log(ngx.ERR, "berth: set_current_peer ", endpoint.peer, ": ", err)
        return ngx.exit(ngx.ERROR)
    end
end

-- Drops what the per-worker tables would otherwise keep forever: failure records and
-- ejections that expired, and cached backends that were removed or changed.
local function prune(premature)
    if premature then
        return
    end
    local now = ngx.now()
    for peer, entry in pairs(failures) do
        if now - entry.since >= FAIL_TIMEOUT then
            failures[peer] = nil
        end
    end
    for peer, until_time in pairs(ejected) do
        if until_time <= now then
            ejected[peer] = nil
        end
    end
    for name, entry in pairs(cache) do
        if store.version(name) ~= entry.version then
            cache[name] = nil
        end
    end
end

-- The backend as this worker balances it, for GET /weights (berth.weights): nil when the
-- dict does not hold it. Other workers build the same from the same stored entry.
function M.backend(name)
    return get_backend(name)
end

function M.init_worker()
    -- Forked workers inherit one random state; without a seed they would all start their
    -- round-robins at the same endpoints.
    math.randomseed(ngx.worker.pid() * 1000 + math.floor(ngx.now() * 1000) % 1000)
    local ok, err = ngx.timer.every(FAIL_TIMEOUT, prune)
    if not ok then
        ngx.log(ngx.ERR, "berth: cannot start the pruning timer: ", err)
    end
    counters.init_worker()
end

return M
