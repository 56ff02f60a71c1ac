# 06-stop.t -- SIGTERM, SIGQUIT, SIGINT and `conduix-cp stop` exit 0 with no child left and the pidfile
# removed, letting a request in flight complete; kill -9 of the master leaves no child behind.
use v5.36;
use Test::More;
use CxTest;
use Time::HiRes qw(sleep time);

my $s = CxTest->new(workers => 2);

# in_flight -- SIG with a request in flight: its headers and most of its body are sent before the signal,
# the rest 2 s after it (past any short grace, well within server.shutdown_timeout = 10 s); the worker
# must answer it, then everything exits 0.
sub in_flight($sig) {
    $s->start;
    ok($s->wait_children, 'children up');
    my @kids = $s->children;
    my $admin = $s->admin_token;
    my $body = '{"name":"t06-inflight","description":"in flight","config_yaml":"source: {}\n"}';
    my $c = $s->conn;
    my $req = $c->request_text('POST', '/api/v1/pipelines',
        headers => { 'Content-Type' => 'application/json', Authorization => "Bearer $admin" }, body => $body);
    my $half = length($req) - 20;
    $c->send_raw(substr($req, 0, $half));
    sleep 0.5;
    my $t0 = time;
    $s->signal($sig);
    sleep 2;
    my $alive = $s->master_alive;
    ok($alive, "SIG$sig: the master waits for the request in flight");
    $c->send_raw(substr($req, $half)) if $alive;
    my $r = $c->read_response(timeout => 15);
    ok($r->{status} >= 200 && $r->{status} < 600 && defined $r->{headers}{'content-length'},
        "SIG$sig: the request in flight got a complete response ($r->{status})") or diag explain $r;
    my $st = $s->wait_exit(30);
    is($st, 0, "SIG$sig: the master exits 0");
    cmp_ok(time - $t0, '<', 15, "SIG$sig: stopped within shutdown_timeout (10 s) and a margin");
    ok(!-e $s->pidfile, "SIG$sig: pidfile removed");
    wait_ok { !$s->leftover_children } 10, "SIG$sig: no child left" or diag explain [$s->leftover_children];
    ok(scalar(@kids) >= 4, 'there were children to stop (' . scalar(@kids) . ')');
    ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->port, Proto => 'tcp', Timeout => 2),
        "SIG$sig: the port is closed");
}

in_flight('TERM');
in_flight('QUIT');

# An idle server stops at once (nothing to wait for).
{
    $s->start;
    my $t0 = time;
    is($s->stop, 0, 'SIGTERM on an idle server: exit 0');
    cmp_ok(time - $t0, '<', 3 * $CxTest::SCALE, 'and within 3 s');
}

# SIGINT
{
    $s->start;
    ok($s->wait_children, 'children up');
    is($s->stop(signal => 'INT'), 0, 'SIGINT: the master exits 0');
    ok(!-e $s->pidfile, 'pidfile removed');
    wait_ok { !$s->leftover_children } 10, 'no child left after SIGINT';
}

# conduix-cp stop
{
    $s->start;
    ok($s->wait_children, 'children up');
    $s->remember_children;
    # The test is the master's parent: it reaps it while `stop` waits (as a shell or systemd would).
    my $h = $s->cli('stop', { background => 1 });
    my $r;
    wait_until { $s->master_alive; $r = CxTest::poll_cmd($h) } 40, 'conduix-cp stop to return';
    $r //= CxTest::finish_cmd($h, 1);
    is($r->{exit}, 0, 'conduix-cp stop exits 0') or diag "$r->{out}$r->{err}";
    ok(!$s->master_alive, 'the master has exited when conduix-cp stop returns');
    is($s->{exit_status}, 0, 'and its exit status is 0');
    ok(!-e $s->pidfile, 'pidfile removed');
    wait_ok { !$s->leftover_children } 10, 'no child left after conduix-cp stop';
    $r = $s->cli('stop');
    ok(!$r->{timed_out} && $r->{signal} == 0, 'conduix-cp stop with nothing running returns by itself')
        or diag explain $r;
}

# kill -9 of the master: the children exit by themselves.
{
    $s->start;
    ok($s->wait_children, 'children up');
    my @kids = $s->children;
    $s->kill9;
    ok(!$s->master_alive, 'master killed');
    wait_ok { !$s->leftover_children } 10, 'every child exits after kill -9 of the master'
        or diag explain [$s->leftover_children];
    # the same processes (pid and start time: a pid may have been reused by another test's server meanwhile)
    my @orphans = grep {
        my $st = CxTest::proc_stat($_->{pid}) // {};
        ($st->{start} // '') eq $_->{start} && (CxTest::proc_title($_->{pid}) // '') =~ /^conduix-cp:/ && ($st->{ppid} // 0) == 1
    } @kids;
    is(scalar @orphans, 0, 'no orphan titled conduix-cp: adopted by init');
    wait_ok { !IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->port, Proto => 'tcp', Timeout => 1) }
        10, 'nobody serves the port any more';
}

done_testing;
