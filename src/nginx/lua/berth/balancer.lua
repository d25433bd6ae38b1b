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

-- set_current_peer parses its host as nginx parses a URL, so IPv6 needs brackets.
local function host_of(address)
    if address:find(":", 1, true) then
        return "[" .. address .. "]"
    end
    return address
end

-- Groups that can take no traffic are left out. Each endpoint carries a short hash as
-- its sticky-cookie value, so the cookie does not reveal pod addresses.
local function build(decoded)
    local groups, by_cookie, peers = {}, {}, {}
    local peer_count = 0
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
        if weight > 0 and #endpoints > 0 then
            groups[#groups + 1] = {
                weight = weight,
                current = 0,
                endpoints = endpoints,
                -- Workers start at different endpoints instead of all hitting the first.
                next = math.random(#endpoints),
            }
            for _, endpoint in ipairs(endpoints) do
                by_cookie[endpoint.cookie] = endpoint
                if not peers[endpoint.peer] then
                    peers[endpoint.peer] = true
                    peer_count = peer_count + 1
                end
            end
        end
    end
    local sticky = decoded.sticky
    local cookie_attributes
    if sticky then
        cookie_attributes = "; Path=/; HttpOnly; SameSite=Lax"
        if sticky.maxAgeSeconds then
            cookie_attributes = "; Max-Age=" .. sticky.maxAgeSeconds .. cookie_attributes
        end
    end
    return {
        groups = groups,
        peer_count = peer_count,
        by_cookie = by_cookie,
        sticky_cookie = sticky and sticky.cookie,
        cookie_attributes = cookie_attributes,
    }
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

-- A cookie naming an endpoint that is still present and not ejected keeps the client
-- there; otherwise the client is given a new endpoint and a cookie naming it.
local function sticky_endpoint(backend)
    local now = ngx.now()
    local endpoint = backend.by_cookie[ngx.var["cookie_" .. backend.sticky_cookie] or ""]
    if endpoint and available(endpoint, now) then
        return endpoint
    end
    endpoint = pick(backend, now) or pick(backend)
    ngx.header["Set-Cookie"] = backend.sticky_cookie .. "=" .. endpoint.cookie .. backend.cookie_attributes
    return endpoint
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
    if not backend or backend.peer_count == 0 then
        return unavailable()
    end
    local ctx = { backend = backend, name = name }
    if backend.sticky_cookie then
        ctx.first = sticky_endpoint(backend)
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
