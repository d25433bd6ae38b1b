-- Requests, 5xx answers and latency per backend and Version (the group of the peer that
-- answered), counted in the log phase and added every second into the shared dict
-- `berth_counters`, which every worker shares. The agent reads them from the control
-- endpoint (GET /counters) and exports them; the release controller's analysis reads the
-- agent. Counters only grow until the dict is wiped (restart): readers take differences
-- and treat a drop as a reset.
--
--   <backend> TAB <version> TAB r      attempts (a request retried on another peer counts once per peer)
--   <backend> TAB <version> TAB e      5xx answers
--   <backend> TAB <version> TAB s      sum of attempt times (from choosing the peer to the end), in milliseconds
--   <backend> TAB <version> TAB <i>    attempts that took at most BOUNDS_MS[i] (and more than BOUNDS_MS[i - 1])
local cjson = require("cjson.safe")

local dict = ngx.shared.berth_counters
if not dict then
    error("berth: the config must declare `lua_shared_dict berth_counters <size>;`")
end

-- Latency bucket bounds in milliseconds, at most ~25% apart above 10 ms, so a p99
-- interpolated inside a bucket is off by a few percent at most. The last is +Inf.
local BOUNDS_MS = {
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 90,
    100, 120, 140, 160, 180, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 900,
    1000, 1200, 1400, 1600, 1800, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 6000, 7000, 8000, 9000,
    10000, 15000, 20000, 30000, 60000, 120000,
}
local OVERFLOW = #BOUNDS_MS + 1

local M = {}

local function bucket(ms)
    local low, high = 1, #BOUNDS_MS
    if ms > BOUNDS_MS[high] then
        return OVERFLOW
    end
    while low < high do
        local middle = math.floor((low + high) / 2)
        if ms <= BOUNDS_MS[middle] then
            high = middle
        else
            low = middle + 1
        end
    end
    return low
end

local function add(key, value)
    local _, err, forcible = dict:incr(key, value, 0)
    if err then
        ngx.log(ngx.ERR, "berth: counter ", key, ": ", err)
    elseif forcible then
        ngx.log(ngx.WARN, "berth: berth_counters is full; older counters were evicted")
    end
end

-- Each worker counts in its own table and adds it to the shared dict every
-- FLUSH_SECONDS: a request then costs a few table updates instead of locked dict writes.
-- Readers see counts at most that much late.
local FLUSH_SECONDS = 1
-- backend -> version -> { r = attempts, e = 5xx, s = sum of ms, b = { [bucket] = count } }
local pending = {}

local function flush()
    local counted = pending
    pending = {}
    for backend, versions in pairs(counted) do
        for version, entry in pairs(versions) do
            local prefix = backend .. "\t" .. version .. "\t"
            add(prefix .. "r", entry.r)
            if entry.e > 0 then
                add(prefix .. "e", entry.e)
            end
            add(prefix .. "s", entry.s)
            for i, n in pairs(entry.b) do
                add(prefix .. i, n)
            end
        end
    end
end

local function count(ctx, failed)
    local backend, version = ctx.name, ctx.last.group
    local versions = pending[backend]
    if not versions then
        versions = {}
        pending[backend] = versions
    end
    local entry = versions[version]
    if not entry then
        entry = { r = 0, e = 0, s = 0, b = {} }
        versions[version] = entry
    end
    -- nginx's cached clock, as of the event that finished the attempt: no system call.
    local ms = (ngx.now() - ctx.attempt_started) * 1000
    local i = bucket(ms)
    entry.r = entry.r + 1
    if failed then
        entry.e = entry.e + 1
    end
    entry.s = entry.s + ms
    entry.b[i] = (entry.b[i] or 0) + 1
end

-- balancer_by_lua, before a retry: the attempt that failed (error, timeout, 502, 503 or
-- 504) counts as a 5xx of its Version, though the client may get another peer's answer.
function M.failed_attempt(ctx)
    count(ctx, true)
end

-- log_by_lua: counts the last attempt under the Version of its peer. Attempts, not
-- requests, are counted, so a Version whose failures other peers hide still shows them.
function M.log()
    local ctx = ngx.ctx.berth
    if ctx and ctx.last then
        count(ctx, ngx.status >= 500)
    end
end

-- From init_worker: flushes every FLUSH_SECONDS, and once more when the worker exits
-- (a reload), so its last counts are not lost.
function M.init_worker()
    local ok, err = ngx.timer.every(FLUSH_SECONDS, flush)
    if not ok then
        ngx.log(ngx.ERR, "berth: cannot start the counter flush timer: ", err)
    end
end

-- GET /counters on the control endpoint: every counter, grouped per backend and Version.
function M.dump()
    local series = {}
    local index = {}
    for _, key in ipairs(dict:get_keys(0)) do
        local backend, version, field = key:match("^([^\t]*)\t([^\t]*)\t(.+)$")
        if backend then
            local id = backend .. "\t" .. version
            local entry = index[id]
            if not entry then
                entry = { backend = backend, version = version, requests = 0, errors = 0, sumMs = 0, buckets = {} }
                for i = 1, OVERFLOW do
                    entry.buckets[i] = 0
                end
                index[id] = entry
                series[#series + 1] = entry
            end
            local value = dict:get(key) or 0
            if field == "r" then
                entry.requests = value
            elseif field == "e" then
                entry.errors = value
            elseif field == "s" then
                entry.sumMs = value
            else
                local i = tonumber(field)
                if i and entry.buckets[i] then
                    entry.buckets[i] = value
                end
            end
        end
    end
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode({ boundsMs = BOUNDS_MS, series = series }))
end

return M
