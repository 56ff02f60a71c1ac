-- POST /api/v1/pipelines with a name unique across wrk runs (the shared harness's create.lua restarts its
-- counter for the measured run, so its names repeat the warm-up's and a unique-name server answers 409).
wrk.method = "POST"
wrk.path = "/api/v1/pipelines"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")
wrk.headers["Content-Type"] = "application/json"
local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
end
local run, counter = 0, 0
function init(args)
  math.randomseed(os.time() * 1000 + (tid or 1))
  run = math.random(1, 2000000000)
end
function request()
  counter = counter + 1
  local body = string.format(
    '{"name":"bench-%d-%d-%d","description":"created by wrk",' ..
    '"config_yaml":"sources:\\n  in:\\n    type: kafka\\n    topic: events\\nsinks:\\n  out:\\n    type: s3\\n    bucket: archive\\n"}',
    run, tid or 0, counter)
  return wrk.format(nil, nil, nil, body)
end
function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("RESULT rps=%.1f p50_us=%.0f p99_us=%.0f non2xx=%d sockerr=%d requests=%d\n",
    summary.requests / secs, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout, summary.requests))
end
