-- list.lua -- GET /api/v1/pipelines?page=1&page_size=20, the web UI's first page.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
wrk.headers["Authorization"] = "Bearer " .. token
wrk.path = "/api/v1/pipelines?page=1&page_size=20"
