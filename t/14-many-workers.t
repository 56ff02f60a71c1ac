# 14-many-workers.t -- the master's tables are sized for what the configuration asks: 45 workers are 45
# worker processes before and after each SIGHUP (the child table once held 80 entries, so a reload of
# 45 workers left 32), a reload to more workers starts them all, and a reload that comes while an older
# generation still drains waits for it instead of losing workers.
use v5.36;
use Test::More;
use CxTest;
use Time::HiRes qw(sleep time);

my $N = 45;
my $s = CxTest->new(workers => $N, config => { 'server.shutdown_timeout' => '20s' });
$s->start(timeout => 60);
ok($s->wait_children(60), "$N workers, scheduler and hbmon up") or diag explain $s->titles;

# workers -- the live worker processes: {index => [pids]}.
sub workers() {
    my %w;
    for ($s->children) { push @{ $w{$1} }, $_->{pid} if $_->{title} =~ /^conduix-cp: worker (\d+)$/ }
    return \%w;
}

# generation_done -- exactly N workers, one per index 0..N-1, none of them in OLD.
sub generation_done($n, @old) {
    my %old = map { $_ => 1 } @old;
    my $w = workers();
    return 0 if grep { $_ >= $n } keys %$w;
    for my $i (0 .. $n - 1) { return 0 unless @{ $w->{$i} // [] } == 1 && !$old{ $w->{$i}[0] } }
    return 1;
}

sub all_worker_pids() { map { @$_ } values %{ workers() } }

for my $round (1 .. 2) {
    my @old = all_worker_pids();
    $s->signal('HUP');
    ok(wait_until(sub { generation_done($N, @old) }, 60, "a new generation of $N workers"),
        "SIGHUP $round: $N new workers, one per index, the old ones gone")
        or diag explain { map { $_ => scalar @{ workers()->{$_} } } keys %{ workers() } };
    is(scalar(all_worker_pids()), $N, "SIGHUP $round: exactly $N worker processes");
}
like($s->log, qr/configuration reloaded: generation 2 with $N workers/, 'the log counts what runs');
unlike($s->log, qr/child table full/, 'no "child table full"');
is($s->get('/health')->{status}, 200, '/health 200 after the reloads');

# More workers by reload: all of them start.
my $M = 60;
$s->set_config('server.workers' => $M);
$s->write_config;
{
    my @old = all_worker_pids();
    $s->signal('HUP');
    ok(wait_until(sub { generation_done($M, @old) }, 60, "$M workers"), "reload to $M workers: $M new workers")
        or diag scalar(all_worker_pids()) . " workers";
    is(scalar(all_worker_pids()), $M, "exactly $M worker processes");
}

# A reload while an older generation still drains. A connection with a request in progress keeps its
# worker alive (draining, up to shutdown_timeout); a second SIGHUP then needs room for a third
# generation, which max_open_conns does not give: it waits until the drain is over, then happens.
$s->set_config('server.workers' => 4, 'database.max_open_conns' => 12);    # 2 x 4 + 3 singletons fit, 3 x 4 do not
$s->write_config;
{
    my @old = all_worker_pids();
    $s->signal('HUP');
    ok(wait_until(sub { generation_done(4, @old) }, 60, '4 workers'), 'reload to 4 workers');
}
{
    my $c = $s->conn;
    is($c->request('GET', '/health')->{status}, 200, 'a keep-alive connection to a worker of generation 4');
    # half a request: the worker that owns the connection keeps draining until it is answered
    $c->send_raw("GET /health HTTP/1.1\r\nHost: x\r\n");
    my @gen4 = all_worker_pids();
    $s->signal('HUP');
    ok(wait_until(sub { generation_done(4, @gen4) }, 60, 'generation 5'), 'SIGHUP: generation 5 replaces generation 4');
    my @gen5 = all_worker_pids();
    my $draining = () = grep { CxTest::proc_alive($_) } @gen4;
    is($draining, 1, 'one worker of generation 4 still drains (it owns the half-sent request)');
    $s->signal('HUP');
    wait_ok { $s->log =~ /reload deferred/ } 20, 'the next SIGHUP is deferred while generation 4 drains' or diag $s->log_tail;
    is(scalar(all_worker_pids()), 4, 'meanwhile: generation 5 serves, 4 workers');
    ok(!grep({ !CxTest::proc_alive($_) } @gen5), 'none of generation 5 was stopped');
    $c->send_raw("\r\n");
    is($c->read_response->{status}, 200, 'the half-sent request is answered');
    $c->close;
    ok(wait_until(sub { generation_done(4, @gen5) }, 60, 'generation 6'), 'then the deferred reload happens: generation 6');
    is(scalar(all_worker_pids()), 4, 'exactly 4 workers');
    like($s->log, qr/configuration reloaded: generation 6 with 4 workers/, 'logged as generation 6');
}

is($s->stop, 0, 'stop exits 0');
done_testing;
