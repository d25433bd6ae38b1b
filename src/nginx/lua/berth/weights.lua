-- GET /weights on the control endpoint: what the balancer applies, per backend and
-- Version, read back rather than assumed. For each group of each stored backend:
--
--   configured  the weight the agent pushed (null: none, the balancer weighs by endpoints)
--   weight      the weight the balancer picks with: 0 for a group it left out (weight 0
--               or no endpoints), as berth.balancer builds the backend
--   endpoints   the endpoints the group holds
--
-- The agent serves them on its /metrics (src/nginx/weights.ts); the release controller
-- compares them with the split it asked for.
local cjson = require("cjson.safe")
local store = require("berth.store")
local balancer = require("berth.balancer")

local M = {}

-- The built backend keeps the groups it picks from, each endpoint naming its group.
local function picked_weights(backend)
    local weights = {}
    for _, group in ipairs(backend.groups) do
        weights[group.endpoints[1].group] = group.weight
    end
    return weights
end

local function applied(name)
    local ok, backend = pcall(balancer.backend, name)
    local stored = cjson.decode(store.encoded(name) or "")
    if not ok or not backend or not stored then
        return nil
    end
    local weights = picked_weights(backend)
    local versions = {}
    for i, group in ipairs(stored.groups) do
        versions[i] = {
            version = group.name,
            configured = group.weight or cjson.null,
            weight = weights[group.name] or 0,
            endpoints = #group.endpoints,
        }
    end
    return { backend = name, versions = versions }
end

function M.dump()
    local backends = {}
    for _, name in ipairs(store.names()) do
        backends[#backends + 1] = applied(name)
    end
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode({ backends = backends }))
end

return M
