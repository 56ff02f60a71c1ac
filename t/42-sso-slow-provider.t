# 42-sso-slow-provider.t -- a slow identity provider never stalls anything else. The provider takes 10 s to
# answer its discovery document while every worker has a sign-in waiting on it; meanwhile /health, /ready
# and API calls on every worker keep answering at once (each well under a second, scaled by
# CX_TEST_TIMEOUT_SCALE), and the waiting sign-ins finish when the provider finally answers.
#
# Each worker is reached through keep-alive connections known to be served by it: a request with a
# unique X-Request-ID, then its access-log line, which has the worker's pid.
use v5.36;
use Test::More;
use CxTest;
use CxIdp;
use Time::HiRes qw(time sleep);

my $DELAY_MS = 10_000;
my $BOUND = 1.0 * $CxTest::SCALE;    # seconds any other request may take while the provider is slow
my $WORKERS = 2;

my $fake = CxIdp->fake;
my $s = CxTest->new(workers => $WORKERS);
$s->set_config(
    'auth.oidc' => [map { { provider => $_, issuer_url => $fake->url, client_id => 'fake-client', client_secret => 'fake-secret',
        redirect_url => $s->base_url . "/api/v1/auth/callback/$_" } } qw(slow slow2)],
    'auth.provider_timeout' => '60s');
$s->write_config;
$s->start;
$s->wait_children;
my $token = $s->admin_token;

# worker_of -- the pid of the worker that served the request with this id (from the access log).
sub worker_of($rid) {
    my $pid;
    wait_until {
        ($pid) = map { $_->{pid} } grep { ($_->{type} // '') eq 'access' && ($_->{request_id} // '') eq $rid } $s->log_lines;
        $pid;
    } 10, "the access-log line of $rid";
    return $pid;
}

# Keep-alive connections, three per worker: one to probe, one to wait on the provider, one whose client
# goes away while it waits.
my (%conns, $n);
my %workers = map { $_ => 1 } $s->worker_pids;
is(scalar(keys %workers), $WORKERS, "$WORKERS workers");
for my $i (1 .. 300) {
    last if keys(%conns) == $WORKERS && !grep { @{ $conns{$_} } < 3 } keys %conns;
    my $c = $s->conn;
    my $rid = "t42-map-$$-$i";
    my $r = $c->request('GET', '/health', headers => { 'X-Request-ID' => $rid });
    next unless $r->{status} == 200;
    my $pid = worker_of($rid) // next;
    push @{ $conns{$pid} }, $c;
    $n++;
}
my @pids = sort keys %conns;
is(scalar(@pids), $WORKERS, 'connections to every worker') or BAIL_OUT('could not reach every worker');
ok(!grep({ @{ $conns{$_} } < 3 } @pids), 'three connections to each') or BAIL_OUT('not enough connections per worker');

# probe -- /health, /ready and two API calls on connection c: the slowest answer's time, and all 200?
sub probe($c) {
    my ($max, $ok) = (0, 1);
    for my $req (['/health'], ['/ready'], ['/api/v1/pipelines', $token], ['/api/v1/agents', $token]) {
        my ($path, $tok) = @$req;
        my $t0 = time;
        my $r = $c->request('GET', $path, headers => { $tok ? (Authorization => "Bearer $tok") : () }, timeout => 30);
        my $dt = time - $t0;
        $max = $dt if $dt > $max;
        $ok &&= $r->{status} == 200;
        diag("$path: $r->{status} $r->{content}") unless $r->{status} == 200;
    }
    return ($max, $ok);
}

my %before;
for my $pid (@pids) {
    my ($max, $ok) = probe($conns{$pid}[0]);
    ok($ok, "worker $pid answers before the sign-ins");
    $before{$pid} = $max;
}

# A sign-in on every worker; each waits 10 s on the provider's discovery document.
$fake->control(mode => 'valid', delay_ms => { discovery => $DELAY_MS });
my $t_slow = time;
for my $pid (@pids) {
    for my $c (@{ $conns{$pid} }[1, 2]) {
        $c->send_raw($c->request_text('GET', '/api/v1/auth/login/slow'));
    }
}
wait_ok { $fake->stats->{discovery} == 2 * $WORKERS } 5, 'every worker is waiting on the provider, twice';
$conns{$_}[2]->close for @pids;    # those browsers go away (HTTP/1 notices only when it answers)

my ($rounds, %during, %all_ok) = (0);
%all_ok = map { $_ => 1 } @pids;
while (time - $t_slow < $DELAY_MS / 1000 - 3) {    # keep probing until shortly before the provider answers
    for my $pid (@pids) {
        my ($max, $ok) = probe($conns{$pid}[0]);
        $all_ok{$pid} &&= $ok;
        $during{$pid} = $max if $max > ($during{$pid} // 0);
    }
    $rounds++;
    sleep 0.5;
}
cmp_ok($rounds, '>=', 3, "$rounds rounds of probes while the provider was slow");
for my $pid (@pids) {
    ok($all_ok{$pid}, "worker $pid: every answer was 200 while its sign-in waited on the provider");
    cmp_ok($during{$pid} // 99, '<', $BOUND, sprintf('worker %d: the slowest of %d answers took %.3f s (before: %.3f s)', $pid,
        4 * $rounds, $during{$pid} // 99, $before{$pid}));
}
for my $pid (@pids) {
    ok(!$conns{$pid}[1]->at_eof(0) && !length($conns{$pid}[1]{buf}), "worker $pid: its sign-in is still waiting");
}

# The provider answers at last: the sign-ins finish.
for my $pid (@pids) {
    my $r = $conns{$pid}[1]->read_response(timeout => 60 * $CxTest::SCALE);
    my $took = time - $t_slow;
    is($r->{status}, 302, "worker $pid: the waiting sign-in completes with its redirect");
    cmp_ok($took, '>=', $DELAY_MS / 1000 - 0.5, sprintf('worker %d: after the provider answered (%.1f s)', $pid, $took));
    like($r->{headers}{location} // '', qr{^\Q${\ $fake->url}\E/authorize\?}, "worker $pid: to the provider's authorization endpoint");
}

# Over HTTP/2 a client that gives up resets its stream: the pending call is cancelled there and then
# (slow2: a provider whose discovery document no worker has yet).
$fake->control(mode => 'valid', delay_ms => { discovery => 3000 });
my $h2 = `curl -s -o /dev/null -w '%{http_version}' --http2-prior-knowledge --max-time 1 ${\ $s->base_url}/api/v1/auth/login/slow2`;
is($h2, '0', 'an HTTP/2 client gives up after 1 s without an answer');
wait_ok { $s->log =~ /sign-in with slow2 abandoned: the client went away while a call to the provider was in flight/ } 10,
    'the worker drops that sign-in and its call to the provider';
$fake->control(mode => 'valid');
sleep 3;
is_deeply([sort $s->worker_pids], \@pids, 'no worker died (the abandoned sign-ins were dropped cleanly)');
is($s->get('/health')->{status}, 200, 'still serving');

is($s->stop, 0, 'stop exits 0');
done_testing;
