# 45-revocation-view.t -- a worker that has not read the revoked tokens fails closed. With MySQL stopped, a
# worker is SIGKILLed and respawned: it cannot read which tokens are revoked, so it answers 503
# DATABASE_UNAVAILABLE with Retry-After to every token (a user's, an agent's), while the worker that read
# the list before the outage keeps refusing the revoked tokens (401) and keeps accepting an agent's REST
# heartbeat (Redis is up). A revoked token is never accepted by any worker: not during the outage, not
# while MySQL comes back and the new worker's connection is still in its backoff, not after.
use v5.36;
use Test::More;
use CxTest qw(:DEFAULT jwt_decode);
use HTTP::Tiny;
use Time::HiRes qw(time);

my $s = CxTest->new(workers => 2);
$s->start;
ok($s->wait_children, 'two workers and the other children');

my $user = $s->token(role => 'viewer', sub => 'v-45');               # revoked below
my $old_agent = $s->token(role => 'agent', sub => 'agent-45-old');   # revoked below
my $agent = $s->token(role => 'agent', sub => 'agent-45');
for my $t ($user, $old_agent) {
    my $jti = jwt_decode($t)->{claims}{jti};
    is($s->auth_delete("/api/v1/sessions/$jti")->{status}, 200, "token $jti revoked");
}

sub fresh() { HTTP::Tiny->new(keep_alive => 0, timeout => 30) }
sub read_as($tok, $rid) { $s->get('/api/v1/pipelines', token => $tok, 'X-Request-ID' => $rid, ua => fresh()) }
sub beat($id, $tok, $rid) {
    return $s->post("/api/v1/agents/$id/heartbeat",
        { agent_id => $id, timestamp => '2026-03-01T10:00:00Z', cpu_usage => 1, memory_usage => 2, disk_usage => 3, pipelines => [] },
        token => $tok, 'X-Request-ID' => $rid, ua => fresh());
}
sub is_status($code) { sub ($r) { $r->{status} == $code } }

# a revocation reaches the other workers within a poll interval (0.5 s)
wait_ok { $s->each_worker(sub ($rid) { read_as($user, $rid) }, is_status(401), quiet => 1) } 5,
    'every worker refuses the revoked user token';
wait_ok { $s->each_worker(sub ($rid) { beat('agent-45-old', $old_agent, $rid) }, is_status(401), quiet => 1) } 5,
    'every worker refuses the revoked agent token';
ok($s->each_worker(sub ($rid) { beat('agent-45', $agent, $rid) }, is_status(200)), "every worker takes the good agent's heartbeat");

# ---- MySQL down; a worker starts without the list --------------------------------------------------------
$s->stop_mysql;
my ($killed) = $s->worker_pids;
kill 'KILL', $killed;
wait_ok { my @w = $s->worker_pids; @w == 2 && !grep { $_ == $killed } @w } 30, 'the killed worker is respawned';
my %before = map { $_ => 1 } $s->worker_pids;

# Ask until each worker has answered each question three times; tell the workers apart by the access log.
my (%seen, %bad, %refusal);
my @asks = (
    [ 'revoked user token', sub ($rid) { read_as($user, $rid) } ],
    [ 'revoked agent token', sub ($rid) { beat('agent-45-old', $old_agent, $rid) } ],
    [ 'good agent token', sub ($rid) { beat('agent-45', $agent, $rid) } ],
);
for my $n (1 .. 1000) {
    my ($what, $ask) = @{ $asks[$n % 3] };
    my $rid = "t45-out-$n";
    my $r = $ask->($rid);
    my $pid = $s->answered_by($rid) // 'unknown';
    push @{ $seen{$what}{$pid} }, $r->{status};
    $refusal{$pid} //= $r if $r->{status} == 503;
    last if 3 == grep { my $w = $_; 2 == grep { @{ $seen{$w}{$_} // [] } >= 3 } keys %before } map { $_->[0] } @asks;
}
my ($fresh) = grep { $seen{'good agent token'}{$_} && !grep { $_ == 200 } @{ $seen{'good agent token'}{$_} } } keys %before;
my ($known) = grep { $_ != ($fresh // 0) } keys %before;
ok($fresh && $known, "both workers answered during the outage (the new one $fresh, the other $known)")
    or diag explain \%seen;
$fresh //= 0;
$known //= 0;
is_deeply([ sort { $a <=> $b } keys %{ { map { $_ => 1 } map { @$_ } values %{ $seen{'revoked user token'} } } } ],
    [ 401, 503 ], 'the revoked user token: only 401 and 503 while MySQL is down')
    or diag explain $seen{'revoked user token'};
ok(!grep({ $_ != 503 } @{ $seen{'revoked user token'}{$fresh} // [0] }), '  503 from the new worker');
ok(!grep({ $_ != 401 } @{ $seen{'revoked user token'}{$known} // [0] }), '  401 from the worker that read the list');
ok(!grep({ $_ != 503 } @{ $seen{'revoked agent token'}{$fresh} // [0] }), 'the revoked agent token: 503 from the new worker');
ok(!grep({ $_ != 401 } @{ $seen{'revoked agent token'}{$known} // [0] }), '  401 from the other');
ok(!grep({ $_ != 503 } @{ $seen{'good agent token'}{$fresh} // [0] }), 'the good agent token: 503 from the new worker');
ok(!grep({ $_ != 200 } @{ $seen{'good agent token'}{$known} // [0] }),
    "  and its heartbeats accepted by the other throughout the outage (Redis is up)");
my $x = $refusal{$fresh} // {};
is($x->{json}{code}, 'DATABASE_UNAVAILABLE', "the new worker's refusal: DATABASE_UNAVAILABLE");
like($x->{json}{error} // '', qr/cannot check tokens yet/, '  saying why');
is($x->{headers}{'retry-after'}, '1', '  with Retry-After: 1');
ok($x->{json}{request_id}, '  and the request id');
ok(grep({ ($_->{msg} // '') =~ /answers 503 to every token/ && $_->{pid} == $fresh } $s->log_lines), 'the new worker logged why');

# ---- MySQL returns: from its first answer on, every worker knows ---------------------------------------------
$s->start_mysql;
my (%after, $n);
my $deadline = time + 8;    # beyond the longest reconnect backoff (5 s) of the new worker
while (time < $deadline) {
    my ($what, $ask) = @{ $asks[ ++$n % 2 ] };    # the two revoked tokens
    my $r = $ask->("t45-back-$n");
    $after{$what}{ $r->{status} }++;
}
ok(!$after{'revoked user token'}{200} && !$after{'revoked agent token'}{200},
    "while MySQL comes back no worker accepts a revoked token ($n requests)")
    or diag explain \%after;
wait_ok { $s->each_worker(sub ($rid) { read_as($user, $rid) }, is_status(401), quiet => 1) } 30,
    'then every worker refuses the revoked user token with 401';
ok($s->each_worker(sub ($rid) { beat('agent-45-old', $old_agent, $rid) }, is_status(401)), '  and the revoked agent token');
ok($s->each_worker(sub ($rid) { beat('agent-45', $agent, $rid) }, is_status(200)), '  and takes the good heartbeat again');
ok(grep({ ($_->{msg} // '') =~ /tokens are accepted from now on/ && $_->{pid} == $fresh } $s->log_lines),
    'the new worker logged that it has read the list');

is($s->stop, 0, 'stop exits 0');
done_testing;
