# chaos 6 -- two instances on one database and one Redis, under load and start/stop traffic, with
# simulated agents; one is SIGKILLed with its whole process group: the other keeps serving every
# request, loses no command, declares no agent offline, and (when schedules exist) takes the scheduler
# lease within the lease + 2 s and doubles no fire.
use v5.36;
use Test::More;
use CxTest;
use CxLoad;
use CxChaos;
use Time::HiRes qw(sleep time);

CxChaos::scenario('6 two instances, one killed with its process group');
my $a = CxChaos::server(workers => 2);
my $b = CxTest->new(workers => 2, db => $a->db_name, config => { %CxChaos::CONFIG, 'auth.jwt_secret' => $a->secret });
$b->start;
my $sim = CxChaos::sim($a, 'c6', '-n', 4, '--prefix', 'c6-agent-');
ok(CxTest::wait_until(sub { CxChaos::online($b, 'c6-agent-') == 4 }, 30, 'agents online'), '4 agents online');
my @pids = CxChaos::pipelines($b, 8, 'c6');
my $admin = $b->admin_token;

my ($sched, @spids, $lease_ms) = (CxChaos::schedules_built($b));
if ($sched) {
    @spids = CxChaos::pipelines($b, 1, 'c6-sched');
    CxChaos::schedule_every($b, $_, '2s') for @spids;
} else {
    diag('schedules are not built yet: the lease and fire figures of this scenario are left out');
}

my $t0 = time;
my $control = CxChaos::control($b, \@pids, clients => 2, pause => 0.2);
my @loads = map {
    my $s = $_;
    CxLoad->start($s, name => 'reads-' . $s->port, clients => 2,
        request => sub ($c, $n) { [GET => "/api/v1/pipelines/$pids[$n % @pids]/status", token => $admin] });
} ($a, $b);
sleep 4;
if ($sched) {    # the lease's length: the longest time to live seen on the leader key
    for (1 .. 10) {
        my $ttl = CxTest::redis_cmd('PTTL', 'conduix:scheduler:leader') // -1;
        $lease_ms = $ttl if $ttl > ($lease_ms // -1);
        sleep 0.1;
    }
}
my $tk = time;
kill 'KILL', -$a->master_pid;    # the master and every child at once: a machine that died
ok(CxTest::wait_until(sub { !$a->master_alive }, 10, 'instance A gone'), 'instance A is gone');
sleep 8;
my @c = $control->stop;
my @rb = $loads[1]->stop;
$loads[0]->stop;
my @failed = grep { $_->{status} != 200 } @rb;
my @cfailed = grep { $_->{status} !~ /^(200|202|409)$/ } @c;

CxChaos::figure('requests to the survivor', scalar(@rb) + scalar(@c), '', @rb > 200);
CxChaos::figure('requests to the survivor failed', scalar(@failed) + scalar(@cfailed), '0', !@failed && !@cfailed)
    or diag(CxLoad::by_status(@failed, @cfailed));
my %created = CxChaos::created(@c);
my $acc = CxChaos::accounting($b, \%created, $sim);
CxChaos::figure('commands created / delivered / lost', "$acc->{created} / $acc->{delivered} / " . scalar @{ $acc->{lost} }, '0 lost',
    !@{ $acc->{lost} }) or diag explain $acc->{lost};
my $off = CxChaos::offline_transitions($b, 'c6-agent-', $t0);
CxChaos::figure('agents wrongly declared offline', $off, '0', $off == 0);
is(CxChaos::online($b, 'c6-agent-'), 4, 'all 4 agents online on the survivor');
my $g = CxChaos::ghosts($b, 'c6-agent-');
CxChaos::figure('ghosts / orphaned runs', scalar(@{ $g->{ghosts} }) . ' / ' . scalar(@{ $g->{orphans} }), '0 / 0',
    !@{ $g->{ghosts} } && !@{ $g->{orphans} }) or diag explain $g;
if ($sched) {
    my $r = $b->auth_get("/api/v1/pipelines/$spids[0]/history?limit=500");
    my @after = sort { $a <=> $b } grep { $_ > $tk } map { CxChaos::unix_time($_->{created_at}) }
        grep { ($_->{trigger} // '') eq 'schedule' } @{ $r->{json}{data} // [] };
    my $take = @after ? $after[0] - $tk : 99;
    my $bound = ($lease_ms // 0) / 1000 + 2;
    CxChaos::figure('first fire on the survivor after the kill', sprintf('%.1f s', $take), sprintf('lease + 2 s = %.1f s', $bound),
        $take < $bound);
    my $f = CxChaos::fires($b, $spids[0], $t0);
    CxChaos::figure('fires doubled', $f->{doubled}, '0', $f->{doubled} == 0);
}
is($b->stop, 0, 'the survivor stops cleanly');
done_testing;
