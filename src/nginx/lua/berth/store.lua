-- The backend set as kept in the shared dict `berth_backends`, the only state the
-- control endpoint and the workers share.
--
--   b:<name>  the backend's canonical JSON
--   v:<name>  its version; a worker re-decodes a backend only when this moved
--   names     the stored names, one per line, so a PUT knows what to remove
--   seq       source of versions: one counter for the whole dict, so a version number
--             never comes back for different content while the dict lives
--   lock      held while a PUT applies, so two PUTs cannot interleave
--
-- A dict wiped by a restart (or by a reload that resized it) holds none of these keys
-- and reads as an empty backend set until the agent pushes again.
local dict = ngx.shared.berth_backends
if not dict then
    error("berth: the config must declare `lua_shared_dict berth_backends <size>;`")
end

local BODY = "b:"
local VERSION = "v:"
local NAMES = "names"
local SEQ = "seq"
local LOCK = "lock"
-- Long enough for any PUT to finish; short enough that a worker killed mid-PUT does
-- not block updates for long.
local LOCK_SECONDS = 10

local M = {}

function M.version(name)
    return dict:get(VERSION .. name)
end

function M.encoded(name)
    return dict:get(BODY .. name)
end

function M.names()
    local names = {}
    for name in (dict:get(NAMES) or ""):gmatch("[^\n]+") do
        names[#names + 1] = name
    end
    return names
end

-- safe_set and safe_add fail with "no memory" instead of evicting other keys: evicting
-- would silently drop other backends.
local function apply(backends)
    local wanted = {}
    for _, backend in ipairs(backends) do
        wanted[backend.name] = true
    end

    local removed = 0
    for _, name in ipairs(M.names()) do
        if not wanted[name] then
            dict:delete(VERSION .. name)
            dict:delete(BODY .. name)
            removed = removed + 1
        end
    end

    -- The index is written before the bodies: if a body then fails to fit, the next PUT
    -- still knows every key it may have to remove.
    local names = {}
    for i, backend in ipairs(backends) do
        names[i] = backend.name
    end
    local ok, err = dict:safe_set(NAMES, table.concat(names, "\n"))
    if not ok then
        return nil, "storing the backend names: " .. err
    end

    ok, err = dict:safe_add(SEQ, 0)
    if not ok and err ~= "exists" then
        return nil, "creating the version counter: " .. err
    end

    local changed = 0
    for _, backend in ipairs(backends) do
        if dict:get(BODY .. backend.name) ~= backend.json then
            ok, err = dict:safe_set(BODY .. backend.name, backend.json)
            if not ok then
                return nil, "storing backend " .. backend.name .. ": " .. err
            end
            -- The body is written before its version, so a worker that sees the new
            -- version also reads the new body.
            local version
            version, err = dict:incr(SEQ, 1)
            if not version then
                return nil, "bumping the version counter: " .. err
            end
            ok, err = dict:safe_set(VERSION .. backend.name, version)
            if not ok then
                return nil, "storing the version of backend " .. backend.name .. ": " .. err
            end
            changed = changed + 1
        end
    end
    return { changed = changed, removed = removed, total = #backends }
end

-- Replaces the whole set with `backends`, a list of { name = ..., json = ... }.
-- Returns counts, or nil, a message and whether another PUT was in progress.
function M.replace(backends)
    local ok, err = dict:safe_add(LOCK, true, LOCK_SECONDS)
    if not ok then
        if err == "exists" then
            return nil, "another update of the backend set is in progress", true
        end
        return nil, "taking the update lock: " .. err, false
    end
    local done, result, failure = pcall(apply, backends)
    dict:delete(LOCK)
    if not done then
        return nil, tostring(result), false
    end
    if not result then
        return nil, failure, false
    end
    return result
end

return M
