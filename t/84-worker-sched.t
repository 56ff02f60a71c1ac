# 84-worker-sched.t -- HTTP workers run under SCHED_BATCH when the server was started under the default
# SCHED_OTHER (src/worker.c: a woken worker does not preempt the task on its core); the master and the
# other children keep SCHED_OTHER; the workers of a reload and a worker respawned after a crash are batch
# too; a policy the server inherits (here chrt --idle) is the operator's and every process keeps it.
use v5.36;
use Test::More;
use CxTest;
use Time::HiRes qw(sleep);

my %NAME = (0 => 'SCHED_OTHER', 3 => 'SCHED_BATCH', 5 => 'SCHED_IDLE');

# policy -- the scheduling policy of PID (field 41 of /proc/PID/stat), by name, or undef.
sub policy($pid) {
    my $st = CxTest::slurp("/proc/$pid/stat") // return undef;
    my @f = split ' ', substr($st, rindex($st, ')') + 2);
    return $NAME{ $f[38] } // "policy $f[38]";
}

sub policies($s) {
    my %p;
    $p{ $_->{title} } = policy($_->{pid}) for $s->children;
    $p{master} = policy($s->master_pid);
    return \%p;
}

sub workers_are($s, $want, $what) {
    my @w = $s->worker_pids;
    my @bad = grep { (policy($_) // '') ne $want } @w;
    ok(@w == 2 && !@bad, "$what: both workers $want") or diag explain policies($s);
}

my $s = CxTest->new(workers => 2);
$s->start;
ok($s->wait_children, 'all children up');
workers_are($s, 'SCHED_BATCH', 'started under SCHED_OTHER');
my $p = policies($s);
is($p->{master}, 'SCHED_OTHER', 'the master keeps SCHED_OTHER');
is($p->{"conduix-cp: $_"}, 'SCHED_OTHER', "the $_ keeps SCHED_OTHER") for qw(scheduler hbmon);
is($s->get('/health')->{status}, 200, '/health 200 from batch workers');

# a reload: a new generation of workers, batch as well
my @old = $s->worker_pids;
$s->signal('HUP');
ok(wait_until(sub {
    my @w = $s->worker_pids;
    my %o = map { $_ => 1 } @old;
    @w == 2 && !grep { $o{$_} } @w;
}, 60, 'a new generation'), 'SIGHUP: a new generation of workers');
workers_are($s, 'SCHED_BATCH', 'after SIGHUP');

# a worker killed: its replacement is batch
my ($victim) = $s->worker_pids;
kill 'KILL', $victim;
ok(wait_until(sub { my @w = $s->worker_pids; @w == 2 && !grep { $_ == $victim } @w }, 60, 'a respawned worker'),
    'a worker killed with SIGKILL is respawned');
workers_are($s, 'SCHED_BATCH', 'after a respawn');
$s->stop;

# inherited: started under SCHED_IDLE, every process keeps it (nothing switches it to batch)
my $i = CxTest->new(workers => 2);
$i->start(wrap => ['chrt', '--idle', '0']);
ok($i->wait_children, 'under chrt --idle: all children up');
workers_are($i, 'SCHED_IDLE', 'started under SCHED_IDLE');
$p = policies($i);
is($p->{master}, 'SCHED_IDLE', 'the master runs under SCHED_IDLE');
is($i->get('/health')->{status}, 200, '/health 200 under SCHED_IDLE');
$i->stop;

done_testing;
