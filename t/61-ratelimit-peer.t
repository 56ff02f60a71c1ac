# 61-ratelimit-peer.t -- the rate limit by peer address before authentication: a flood of requests with
# bad or no tokens is refused with 429 before any token is checked, while authenticated callers pay from
# their own subject's bucket (users behind one address do not share a limit); "token refused" log lines
# are rate-limited, with the count of those left out.
use v5.36;
use Test::More;
use Time::HiRes qw(time sleep);
use CxTest;

my $s = CxTest->new(workers => 2,
    config => { 'rate_limit.enabled' => 'true', 'rate_limit.requests_per_second' => 2, 'rate_limit.burst' => 5 });
$s->start;
my $alice = $s->token(role => 'viewer', sub => 'alice');
my $bob = $s->token(role => 'viewer', sub => 'bob');

# envelope429 -- a 429 in the envelope with a Retry-After.
sub envelope429($r, $what) {
    subtest "$what: 429 RATE_LIMITED" => sub {
        is($r->{status}, 429, 'status 429');
        is($r->{json}{code}, 'RATE_LIMITED', 'code');
        ok(JSON::PP::is_bool($r->{json}{success}) && !$r->{json}{success}, 'success false');
        like($r->{headers}{'retry-after'} // '', qr/^[1-9]\d*$/, 'Retry-After in whole seconds');
        is($r->{json}{request_id}, $r->{request_id}, 'request_id');
    };
}

# A flood with a bad token: the first few are 401, the rest 429 without a token check.
my %n;
my ($first429, $t0) = (undef, time);
for (1 .. 40) {
    my $r = $s->get('/api/v1/pipelines', token => 'not.a.valid-token');
    $n{ $r->{status} }++;
    $first429 //= $r if $r->{status} == 429;
}
my $elapsed = time - $t0;
my $ceiling = 5 + int(2 * $elapsed) + 1;
cmp_ok($n{401} // 0, '<=', $ceiling, "at most burst + rate x elapsed answered 401 ($n{401} <= $ceiling)");
cmp_ok($n{401} // 0, '>=', 5, 'the burst of 5 is answered (401)');
is(($n{401} // 0) + ($n{429} // 0), 40, 'every other request is 429') or diag explain \%n;
envelope429($first429, 'bad token past the burst') if ok($first429, 'a 429 was seen');
my $refused = grep { ($_->{msg} // '') =~ /token refused/ } $s->log_lines;
cmp_ok($refused, '<=', $n{401} // 0, "no token refusal logged for the 429s ($refused lines, $n{401} 401s)");

# No token at all: the same peer bucket.
envelope429($s->get('/api/v1/pipelines'), 'no token from the flooding peer');
# A public route pays from the peer's bucket too.
envelope429($s->get('/api/v1/auth/providers'), 'public route from the flooding peer');
# The peer is refused before authentication, whatever it sends.
envelope429($s->get('/api/v1/agents', token => $alice), 'a good token from the flooding peer, before the refill');
is($s->get('/health')->{status}, 200, '/health is never limited');

# After the refill, authenticated requests pay from their subject, not from the peer.
sleep 3.2;
my %a;
$a{ $s->get('/api/v1/agents', token => $alice)->{status} }++ for 1 .. 12;
cmp_ok($a{200} // 0, '>=', 5, "alice gets her burst ($a{200})");
cmp_ok($a{429} // 0, '>', 0, 'and is then limited on her own subject') or diag explain \%a;
is($s->get('/api/v1/agents', token => $bob)->{status}, 200, 'bob, from the same address, has his own bucket');
my $r = $s->get('/api/v1/pipelines');
is($r->{status}, 401, 'a request without a token from that address is still answered 401: alice did not drain the peer');
is($r->{json}{code}, 'UNAUTHORIZED', '401 code UNAUTHORIZED');

is($s->stop, 0, 'clean stop');

# "token refused" lines are rate-limited even with the rate limit off.
my $q = CxTest->new(workers => 1);
$q->start;
$t0 = time;
my $bad = 0;
for (1 .. 150) { $bad++ if $q->get('/api/v1/pipelines', token => "bad.token.$_")->{status} == 401 }
$elapsed = time - $t0;
is($bad, 150, 'with rate_limit.enabled false every bad token is answered 401');
my @lines = grep { ($_->{msg} // '') =~ /token refused/ } $q->log_lines;
my $budget = 20 + int(10 * $elapsed) + 1;
cmp_ok(scalar @lines, '<=', $budget, sprintf('at most 20 + 10/s token-refused lines (%d <= %d)', scalar @lines, $budget));
cmp_ok(scalar @lines, '>=', 1, 'refusals are still logged');
sleep 1.2;
$q->get('/api/v1/pipelines', token => 'bad.token.last');
wait_ok { grep { ($_->{msg} // '') =~ /token refused.*and \d+ more token\(s\) refused, not logged/ } $q->log_lines } 10,
    'the next line counts the refusals left out';
# (the access log is written within 100 ms: wait for the last lines)
my @access;
wait_until { @access = grep { ($_->{type} // '') eq 'access' && ($_->{status} // 0) == 401 } $q->log_lines; @access >= 151 } 10;
cmp_ok(scalar @access, '>=', 151, 'each refused request is still in the access log');
like($q->get('/metrics')->{content}, qr/^conduix_auth_failures_total(\{[^}]*\})? (1[5-9]\d|[2-9]\d\d)/m,
    'and counted in conduix_auth_failures_total');
is($q->stop, 0, 'clean stop');
done_testing;
