# 83-access-log-buffer.t -- the access log is buffered (log.c): a worker's lines are written within
# CX_LOG_FLUSH_MS without more traffic; the lines of a worker killed with SIGKILL while they were still in
# its buffer are written once all the same (the master writes what its slot holds when it reaps it);
# every line is written when workers end by a reload and by a stop; lines of many requests come out
# whole and in order.
use v5.36;
use Test::More;
use CxTest;
use HTTP::Tiny;
use Time::HiRes qw(sleep time);

my $s = CxTest->new(workers => 1);
$s->start;
ok($s->wait_children, 'all children up');

# lines_of -- how many access lines carry this request id.
sub lines_of($rid) {
    return scalar grep { ($_->{type} // '') eq 'access' && ($_->{request_id} // '') eq $rid } $s->log_lines;
}

# ---- written with no more requests coming (the flush timer) ----
{
    my $rid = "t83-idle-$$";
    is($s->get('/health', 'X-Request-ID' => $rid)->{status}, 200, 'a request');
    ok(wait_until(sub { lines_of($rid) == 1 }, 10, 'its line'), 'its line is written with no further request');
}

# ---- a worker killed with lines in its buffer ----
{
    my ($caught, @rids) = (0);
    for my $round (1 .. 6) {
        my $w = $s->child_pid('worker 0') or last;
        my $rid = "t83-kill-$$-$round";
        is($s->get('/health', 'X-Request-ID' => $rid)->{status}, 200, "round $round: a request") or last;
        my $buffered = lines_of($rid) == 0;    # not in the file yet: in the worker's buffer
        kill 'KILL', $w;
        push @rids, $rid;
        ok(wait_until(sub { my $n = $s->child_pid('worker 0'); $n && $n != $w }, 30, 'respawn'), "round $round: worker respawned");
        $caught++ if $buffered;
        last if $caught >= 3;
    }
    cmp_ok($caught, '>=', 1, "the worker was killed with its line still buffered ($caught of " . @rids . ' rounds)');
    ok(wait_until(sub { !grep { lines_of($_) != 1 } @rids }, 10, 'salvaged lines'),
        'the line of every request answered before the kill is in the log, once')
        or diag explain { map { $_ => lines_of($_) } @rids };
}

# ---- many lines: whole, in order ----
{
    my @rids = map { sprintf('t83-many-%d-%04d', $$, $_) } 1 .. 300;
    my $ua = HTTP::Tiny->new(keep_alive => 1);
    my $bad = grep { $ua->get($s->base_url . '/health', { headers => { 'X-Request-ID' => $_ } })->{status} != 200 } @rids;
    is($bad, 0, '300 requests on one connection');
    ok(wait_until(sub { lines_of($rids[-1]) == 1 }, 10, 'the last line'), 'the last line is written');
    my @seen = grep { /^t83-many-$$-/ } map { $_->{request_id} // '' } grep { ($_->{type} // '') eq 'access' } $s->log_lines;
    is_deeply(\@seen, \@rids, 'each line once, in the order of the requests');
    my @torn = grep { /"type":"access"/ && !/^\{.*\}$/ } split /\n/, $s->log;
    is(scalar @torn, 0, 'no torn access line');
}

# ---- a reload and a stop end workers with lines in their buffers ----
{
    my $rid = "t83-reload-$$";
    my $w = $s->child_pid('worker 0');
    is($s->get('/health', 'X-Request-ID' => $rid)->{status}, 200, 'a request before a reload');
    $s->signal('HUP');
    ok(wait_until(sub { my $n = $s->child_pid('worker 0'); $n && $n != $w && !CxTest::proc_alive($w) }, 30, 'reload'),
        'the reload replaced the worker');
    is(lines_of($rid), 1, 'the old worker wrote its line before it exited');
    $rid = "t83-stop-$$";
    is($s->get('/health', 'X-Request-ID' => $rid)->{status}, 200, 'a request before a stop');
    is($s->stop, 0, 'stop exits 0');
    is(lines_of($rid), 1, 'the line is in the log after the stop');
}
undef $s;
done_testing;
