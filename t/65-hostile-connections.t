# 65-hostile-connections.t -- the hostile-input suite, connections: thousands of idle connections, slow
# request heads and bodies (slowloris), clients that disconnect mid-request, and a worker out of file
# descriptors. The server keeps answering, closes what it must, does not spin, and stores nothing.
use v5.36;
use Test::More;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use CxTest qw(:DEFAULT run_cmd);
use CxHostile;

my $s = CxTest->new(workers => 2);
$s->start;
my $admin = $s->admin_token;
my $snap = CxHostile::snapshot($s);

sub connect_raw { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->port, Proto => 'tcp', Timeout => 5) }

# closed_by_server -- the peer has closed (EOF or reset) within TIMEOUT s.
sub closed_by_server($sock, $timeout) {
    my $sel = IO::Select->new($sock);
    my $deadline = time + $timeout;
    while (time < $deadline) {
        next unless $sel->can_read($deadline - time);
        my $n = sysread($sock, my $buf, 65536);
        return 1 if !defined $n || $n == 0;
    }
    return 0;
}

# health_times -- N GET /health: (answered 200, worst seconds).
sub health_times($n) {
    my ($ok, $worst) = (0, 0);
    for (1 .. $n) {
        my $t0 = time;
        $ok++ if $s->get('/health')->{status} == 200;
        my $dt = time - $t0;
        $worst = $dt if $dt > $worst;
    }
    return ($ok, $worst);
}

# 3000 idle connections: the server still answers, and closes them after h2o's 10 s request timeout.
{
    my @idle = grep { defined } map { connect_raw() } 1 .. 3000;
    cmp_ok(scalar @idle, '>=', 2900, sprintf('%d idle connections opened', scalar @idle));
    my ($ok, $worst) = health_times(10);
    is($ok, 10, sprintf('/health answers with them open (worst %.2f s)', $worst));
    my $t0 = time;
    my $closed = 0;
    for my $c (@idle) { $closed++ if closed_by_server($c, 30 * $CxTest::SCALE - (time - $t0)) }
    is($closed, scalar @idle, sprintf('all closed by the server within %.0f s', time - $t0));
    close $_ for @idle;
}

# Slowloris: heads sent a byte at a time, bodies a byte at a time; cut after 10 s of trying.
{
    my @slow = grep { defined } map { connect_raw() } 1 .. 200;
    my $head = "POST /api/v1/pipelines HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $admin\r\nContent-Type: application/json\r\n"
        . "Content-Length: 1000\r\n\r\n";
    my $t0 = time;
    my $i = 0;
    my %open = map { $_ => $_ } @slow;
    while (%open && time - $t0 < 30 * $CxTest::SCALE) {
        for my $c (values %open) {
            my $byte = $i < length $head ? substr($head, $i, 1) : 'x';
            if (!defined syswrite($c, $byte) || closed_by_server($c, 0)) { delete $open{$c} }
        }
        $i++;
        sleep 0.5;
    }
    my $took = time - $t0;
    is(scalar keys %open, 0, sprintf('200 slow clients (a byte per 0.5 s) all cut off, after %.0f s', $took));
    cmp_ok($took, '<', 25 * $CxTest::SCALE, 'by the request timeout, not when they finish');
    my ($ok) = health_times(5);
    is($ok, 5, '/health answers after them');
    close $_ for @slow;
}

# Clients that disconnect mid-request: half a head, half a body, right after a request, during a big answer.
{
    for my $k (1 .. 50) {
        my $c = connect_raw() // next;
        my $r = $k % 4;
        if ($r == 0) { syswrite($c, "GET /api/v1/pipe") }
        elsif ($r == 1) { syswrite($c, "POST /api/v1/pipelines HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $admin\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"name\":") }
        elsif ($r == 2) { syswrite($c, "GET /api/v1/pipelines HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $admin\r\n\r\n") }
        else { syswrite($c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" x 20) }
        close $c;
    }
    my ($ok) = health_times(5);
    is($ok, 5, '50 clients gone mid-request: /health answers');
    is(CxHostile::snapshot($s), $snap, 'and nothing half-written (the half body was never a pipeline)');
}

# Workers out of file descriptors: they pause accepting (no busy loop), connections already open are
# served, and accepting resumes once descriptors are free.
{
    my @w = $s->worker_pids;
    is(scalar @w, 2, 'two workers');
    my @kept = map { $s->conn } 1 .. 6;    # kept-alive connections, spread over the workers
    $_->request('GET', '/health') for @kept;
    for my $pid (@w) {
        my $x = run_cmd({}, 'prlimit', "--pid=$pid", '--nofile=40:40');
        is($x->{exit}, 0, "worker $pid limited to 40 descriptors") or diag $x->{err};
    }
    my @hold = grep { defined } map { connect_raw() } 1 .. 300;
    sleep 1;
    my @cpu0 = map { cpu_s($_) } @w;
    my $ok = 0;
    for (1 .. 10) {
        for my $c (@kept) { $ok++ if $c->request('GET', '/health', timeout => 10)->{status} == 200 }
        sleep 0.2;
    }
    my @cpu = map { cpu_s($w[$_]) - $cpu0[$_] } 0 .. 1;
    is($ok, 60, 'connections already open are served while the workers have no descriptors left');
    cmp_ok($cpu[$_], '<', 1.5, sprintf('worker %d does not spin (%.2f s of CPU in ~2 s)', $w[$_], $cpu[$_])) for 0 .. 1;
    wait_ok { grep { ($_->{msg} // '') =~ /accept: pausing for 100 ms/ } $s->log_lines } 20, 'a worker says it pauses';
    close $_ for @hold;
    run_cmd({}, 'prlimit', "--pid=$_", '--nofile=20000:20000') for @w;
    wait_ok { $s->get('/health')->{status} == 200 } 30, 'new connections are accepted again once descriptors are free';
    $_->close for @kept;
}
# cpu_s -- user + system CPU seconds of pid.
sub cpu_s($pid) {
    my $st = CxTest::slurp("/proc/$pid/stat") // return 0;
    my @f = split ' ', substr($st, rindex($st, ')') + 2);
    return ($f[11] + $f[12]) / 100;    # utime, stime in clock ticks (USER_HZ = 100)
}

CxHostile::log_is_json($s, 'every log line is JSON');
is(CxHostile::snapshot($s), $snap, 'nothing stored');
is($s->stop, 0, 'clean stop');
done_testing;
