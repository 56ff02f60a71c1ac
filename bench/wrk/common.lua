-- common.lua -- shared by conduix-cp's own wrk scenarios (bench/scenarios.sh): the token, the seeded ids,
-- a per-thread random seed and id, and the summary line the scripts parse:
--   RESULT rps=… p50_us=… p99_us=… non2xx=… sockerr=… requests=…
-- Environment: BENCH_TOKEN (an admin token), BENCH_SEED_N (seeded pipelines, default 1000).
token = os.getenv("BENCH_TOKEN") or ""
seed_n = tonumber(os.getenv("BENCH_SEED_N") or "1000")

local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
end

function init(args)
  math.randomseed((tid or 1) * 100003 + os.time())
  run = math.random(1, 2000000000) -- names unique across wrk runs (warm-up and measured run share the database)
end

-- seeded_id -- one of the ids the benchmark seeds: 00000000-0000-4000-8000-%012d, 1..seed_n
function seeded_id()
  return string.format("00000000-0000-4000-8000-%012d", math.random(1, seed_n))
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("RESULT rps=%.1f p50_us=%.0f p99_us=%.0f non2xx=%d sockerr=%d requests=%d\n",
    summary.requests / secs, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout, summary.requests))
end
