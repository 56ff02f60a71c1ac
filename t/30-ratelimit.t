# 30-ratelimit.t -- the per-client rate limit (rate_limit.*): a token bucket per token subject (or peer
# address) kept in shared memory, so the limit holds for the instance and not per worker; 429
# RATE_LIMITED with Retry-After; probes are never limited.
use v5.36;
use Test::More;
use Time::HiRes qw(time sleep);
use CxTest;

my $s = CxTest->new(workers => 4,
    config => { 'rate_limit.enabled' => 'true', 'rate_limit.requests_per_second' => 2, 'rate_limit.burst' => 5 });
$s->start;
my $alice = $s->token(role => 'viewer', sub => 'alice');
my $bob = $s->token(role => 'viewer', sub => 'bob');

# 30 requests on fresh connections (so they spread over the 4 workers) as fast as we can send them
my ($allowed, $limited, $first429) = (0, 0, undef);
my $t0 = time;
for (1 .. 30) {
    my $r = $s->get('/api/v1/agents', token => $alice);
    if ($r->{status} == 429) { $limited++; $first429 //= $r } else { $allowed++ }
}
my $elapsed = time - $t0;
my $ceiling = 5 + int(2 * $elapsed) + 1;
cmp_ok($allowed, '<=', $ceiling, "at most burst + rate x elapsed allowed over all workers ($allowed <= $ceiling)");
cmp_ok($allowed, '>=', 5, "the burst of 5 is allowed ($allowed)");
cmp_ok($limited, '>', 0, "the rest is refused ($limited x 429)");
if (ok($first429, 'a 429 response was seen')) {
    is($first429->{json}{code}, 'RATE_LIMITED', '429 code RATE_LIMITED');
    is($first429->{json}{success}, JSON::PP::false, 'envelope success false');
    like($first429->{headers}{'retry-after'} // '', qr/^[1-9]\d*$/, 'Retry-After in whole seconds');
    ok($first429->{json}{request_id}, 'request_id in the body');
    is($first429->{headers}{'content-length'}, length $first429->{content}, 'Content-Length');
}

# another client has its own bucket; the probes are never limited
isnt($s->get('/api/v1/agents', token => $bob)->{status}, 429, 'another token subject is not limited');
is($s->get('/health')->{status}, 200, '/health is never limited');
is($s->get('/metrics')->{status}, 200, '/metrics is never limited');

# the bucket refills at 2/s
sleep 1.2;
isnt($s->get('/api/v1/agents', token => $alice)->{status}, 429, 'allowed again after the refill');

is($s->stop, 0, 'clean stop');
done_testing;
