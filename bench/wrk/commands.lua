-- commands.lua -- the REST command poll: GET /api/v1/agents/:id/commands of 100 agents (what an agent
-- without Redis asks every few seconds: its unacknowledged, unexpired commands, usually none).
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
wrk.headers["Authorization"] = "Bearer " .. token
function request()
  return wrk.format("GET", string.format("/api/v1/agents/agent-%04d/commands", math.random(1, 100)))
end
