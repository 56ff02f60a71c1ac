-- heartbeat.lua -- POST /api/v1/agents/:id/heartbeat (the REST fallback) for 100 agents, the body of the
-- agent protocol.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"
function request()
  local id = string.format("agent-%04d", math.random(1, 100))
  local body = '{"agent_id":"' .. id .. '","timestamp":"2026-11-25T21:00:00.123456789+09:00",' ..
    '"cpu_usage":12.5,"memory_usage":40.1,"disk_usage":3.2,"pipelines":["p-1","p-2"],' ..
    '"hostname":"edge-node-1","version":"1.4.2"}'
  return wrk.format(nil, "/api/v1/agents/" .. id .. "/heartbeat", nil, body)
end
