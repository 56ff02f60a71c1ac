-- notfound.lua -- an authenticated 404: GET /api/v1/pipelines/:id of an id that names no pipeline (the
-- token is checked, the read is made, the envelope says NOT_FOUND).
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
wrk.headers["Authorization"] = "Bearer " .. token
function request()
  return wrk.format("GET", string.format("/api/v1/pipelines/00000000-0000-4000-9000-%012d", math.random(1, 1000000)))
end
