-- create.lua -- POST /api/v1/pipelines, every name new.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
wrk.method = "POST"
wrk.path = "/api/v1/pipelines"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"
local counter = 0
function request()
  counter = counter + 1
  local body = string.format(
    '{"name":"bench-%d-t%d-%d","description":"created by wrk",' ..
    '"config_yaml":"sources:\\n  in:\\n    type: kafka\\n    topic: events\\nsinks:\\n  out:\\n    type: s3\\n    bucket: archive\\n"}',
    run, tid or 0, counter)
  return wrk.format(nil, nil, nil, body)
end
