-- health.lua -- GET /health, no token.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
wrk.path = "/health"
