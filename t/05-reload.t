# 05-reload.t -- reload under load: three SIGHUPs while three clients hammer /health, with zero failed
# requests and a new worker generation each time; a broken config is logged and ignored;
# `conduix-cp reload` works like kill -HUP.
use v5.36;
use Test::More;
use CxTest;
use Time::HiRes qw(sleep time);

my $N = 2;
my $s = CxTest->new(workers => $N);
$s->start;
ok($s->wait_children, 'all children up');
my $master = $s->master_pid;

# new_generation -- wait until none of OLD is a worker any more and N workers run.
sub new_generation(@old) {
    my %old = map { $_ => 1 } @old;
    return wait_until {
        my @w = $s->worker_pids;
        @w == $N && !grep { $old{$_} } @w;
    } 30, 'a new worker generation';
}

my @gens;
my ($ok, $failed, @why) = $s->under_load(sub {
    for my $i (1 .. 3) {
        my @old = $s->worker_pids;
        $s->signal('HUP');
        ok(new_generation(@old), "SIGHUP $i: a new generation of $N workers replaced the old one");
        push @gens, [$s->worker_pids];
        sleep 0.7;
    }
});
cmp_ok($ok, '>', 300, "the loaders got answers ($ok)");
is($failed, 0, 'zero failed requests during three reloads under load') or diag join "\n", @why;
is($s->master_pid, $master, 'same master');
ok($s->wait_children, 'all children up after the reloads');
my $t = $s->titles;
is(scalar(grep { /^conduix-cp: worker/ } keys %$t), $N, 'worker titles 0..N-1 after reload') or diag explain $t;

# A broken config is logged and ignored.
{
    my @old = sort { $a <=> $b } $s->worker_pids;
    my $good = $s->config_text;
    (my $broken = $good) =~ s/^server:\n/server:\n  bogus_reload_key: 1\n/m;
    $s->write_config($broken);
    my ($ok2, $failed2, @why2) = $s->under_load(sub {
        $s->signal('HUP');
        wait_ok { $s->log =~ /bogus_reload_key/ } 20, 'the log names the unknown key of the broken config'
            or diag $s->log_tail;
        sleep 1;
    });
    is($failed2, 0, 'no failed requests around the broken reload') or diag join "\n", @why2;
    is_deeply([sort { $a <=> $b } $s->worker_pids], \@old, 'the old workers keep serving');
    is($s->get('/health')->{status}, 200, '/health 200');
    is($s->master_pid, $master, 'the master still runs');
    $s->write_config($good);
}

# conduix-cp reload -c FILE
{
    my @old = $s->worker_pids;
    my $r = $s->cli('reload');
    is($r->{exit}, 0, 'conduix-cp reload exits 0') or diag "$r->{out}$r->{err}";
    ok(new_generation(@old), 'conduix-cp reload: a new worker generation');
    is($s->get('/health')->{status}, 200, '/health 200 after conduix-cp reload');
}

# A reload that changes a restart-only key keeps the old value and logs a warning.
{
    my $port = $s->port;
    my @old = $s->worker_pids;
    $s->set_config('server.port' => CxTest::free_port(), 'logging.level' => 'debug');
    $s->write_config;
    $s->{port} = $port;
    $s->signal('HUP');
    ok(new_generation(@old), 'reload with a changed server.port still reloads');
    is($s->get('/health')->{status}, 200, 'still serving on the old port');
    wait_ok { $s->log =~ /server\.port/ } 10, 'the log warns that server.port needs a restart';
}

is($s->stop, 0, 'stop exits 0');
done_testing;
