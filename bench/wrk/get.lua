-- get.lua -- GET /api/v1/pipelines/:id of a random seeded pipeline.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
wrk.headers["Authorization"] = "Bearer " .. token
function request()
  return wrk.format("GET", "/api/v1/pipelines/" .. seeded_id())
end
