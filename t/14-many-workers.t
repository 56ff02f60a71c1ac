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

# workers -- the live worker processes, but those of OLD: {index => [pids]}.
sub workers(@old) {
    my %old = map { $_ => 1 } @old;
    my %w;
    for ($s->children) {
        push @{ $w{$1} }, $_->{pid} if $_->{title} =~ /^conduix-cp: worker (\d+)$/ && !$old{ $_->{pid} };
    }
    return \%w;
}

# generation_up -- exactly N workers besides OLD, one per index 0..N-1.
sub generation_up($n, @old) {
    my $w = workers(@old);
    return 0 if grep { $_ >= $n } keys %$w;
    for my $i (0 .. $n - 1) { return 0 unless @{ $w->{$i} // [] } == 1 }
    return 1;
}

sub all_worker_pids() { map { @$_ } values %{ workers() } }
sub alive(@pids) { scalar grep { CxTest::proc_alive($_) } @pids }

# reload_to -- SIGHUP and wait for a complete new generation of N workers and for the old one to be gone.
sub reload_to($n, $what) {
    my @old = all_worker_pids();
    $s->signal('HUP');
    ok(wait_until(sub { generation_up($n, @old) }, 60, "a new generation of $n workers"), "$what: $n new workers, one per index")
        or diag scalar(all_worker_pids()) . ' workers';
    ok(wait_until(sub { !alive(@old) }, 60, 'the old generation gone'), "$what: the old generation has exited");
    is(scalar(all_worker_pids()), $n, "$what: exactly $n worker processes");
}

reload_to($N, 'SIGHUP 1');
reload_to($N, 'SIGHUP 2');
like($s->log, qr/configuration reloaded: generation 2 with $N workers/, 'the log counts what runs');
unlike($s->log, qr/child table full/, 'no "child table full"');
is($s->get('/health')->{status}, 200, '/health 200 after the reloads');

# More workers by reload: all of them start (two generations of 60 and 3 other processes need 123
# MySQL connections: max_open_conns says so).
$s->set_config('server.workers' => 60, 'database.max_open_conns' => 130);
$s->write_config;
reload_to(60, 'reload to 60 workers');

# Lowering max_open_conns below what the switch needs (60 running + 4 new + 3) can never fit: refused.
$s->set_config('server.workers' => 4, 'database.max_open_conns' => 11);
$s->write_config;
{
    my @before = sort { $a <=> $b } all_worker_pids();
    $s->signal('HUP');
    wait_ok { $s->log =~ /reload refused, keeping the running configuration: .*max_open_conns 11/ } 20,
        'a reload that can never fit is refused, naming database.max_open_conns';
    is_deeply([sort { $a <=> $b } all_worker_pids()], \@before, 'the 60 workers keep serving');
}
$s->set_config('database.max_open_conns' => 100);
$s->write_config;
reload_to(4, 'reload to 4 workers');
$s->set_config('database.max_open_conns' => 11);    # 2 x 4 + 3: two generations fit, three do not
$s->write_config;
reload_to(4, 'reload with max_open_conns 11');

# A reload while an older generation still drains. A connection with a request half sent keeps its
# worker alive (draining); the next SIGHUP would need room for a third generation, which
# max_open_conns does not give: it waits until the drain is over, then happens.
{
    my $c = $s->conn;
    is($c->request('GET', '/health')->{status}, 200, 'a keep-alive connection to a worker of generation 5');
    $c->send_raw("GET /health HTTP/1.1\r\nHost: x\r\n");    # half a request
    my @gen5 = all_worker_pids();
    $s->signal('HUP');
    ok(wait_until(sub { generation_up(4, @gen5) }, 60, 'generation 6'), 'SIGHUP: generation 6 starts');
    ok(wait_until(sub { alive(@gen5) == 1 }, 30, 'one draining worker'),
        'one worker of generation 5 still drains (it owns the half-sent request)');
    my @gen6 = keys %{ { map { $_ => 1 } map { @$_ } values %{ workers(@gen5) } } };
    $s->signal('HUP');
    wait_ok { $s->log =~ /reload deferred/ } 20, 'the next SIGHUP is deferred while generation 5 drains' or diag $s->log_tail;
    is(scalar(keys %{ workers(@gen5) }), 4, 'meanwhile generation 6 serves, 4 workers');
    is(alive(@gen6), 4, 'none of generation 6 was stopped');
    $c->send_raw("\r\n");
    is($c->read_response->{status}, 200, 'the half-sent request is answered');
    $c->close;
    ok(wait_until(sub { generation_up(4, @gen5, @gen6) }, 60, 'generation 7'), 'then the deferred reload happens');
    ok(wait_until(sub { !alive(@gen5, @gen6) }, 60, 'generations 5 and 6 gone'), 'the older generations have exited');
    is(scalar(all_worker_pids()), 4, 'exactly 4 workers');
    like($s->log, qr/configuration reloaded: generation 7 with 4 workers/, 'logged as generation 7');
}

is($s->stop, 0, 'stop exits 0');
done_testing;
