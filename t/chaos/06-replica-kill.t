# chaos 6 -- two instances on one database and one Redis, under load and start/stop traffic, with
# simulated agents; one is SIGKILLed with its whole process group: the other keeps serving every
# request, loses no command, declares no agent offline, and takes the scheduler lease (held by the
# killed one) within the lease + 2 s: a schedule firing every 2 s meanwhile goes on from the survivor,
# with every fire time a run or counted missed (those of the handover), none lost, none doubled.
# The lease is 3 s here (scheduler.leader_lease; 10 s by default) to keep the scenario short.
use v5.36;
use Test::More;
use CxTest;
use CxLoad;
use CxChaos;
use Time::HiRes qw(sleep time);

CxChaos::scenario('6 two instances, one killed with its process group');
my $LEASE = 3;
my %cfg = (%CxChaos::CONFIG, 'scheduler.leader_lease' => "${LEASE}s");
my $a = CxChaos::server(workers => 2, config => \%cfg);
my $b = CxTest->new(workers => 2, db => $a->db_name, config => { %cfg, 'auth.jwt_secret' => $a->secret });
$b->start;
my $sim = CxChaos::sim($a, 'c6', '-n', 4, '--prefix', 'c6-agent-');
ok(CxTest::wait_until(sub { CxChaos::online($b, 'c6-agent-') == 4 }, 30, 'agents online'), '4 agents online');
my @pids = CxChaos::pipelines($b, 8, 'c6');
my $admin = $b->admin_token;
my ($spid) = CxChaos::pipelines($b, 1, 'c6-sched');
my $sched = CxChaos::schedule_every($b, $spid, 2);

# holder -- which instance's scheduler holds the lease: 'A', 'B', '' (none) or the token.
my ($pid_a, $pid_b) = ($a->master_pid, $b->master_pid);
sub holder() {
    my $t = CxTest::redis_cmd('GET', 'conduix:scheduler:leader') // return '';
    return $t =~ /:\Q$pid_a\E:\d+$/ ? 'A' : $t =~ /:\Q$pid_b\E:\d+$/ ? 'B' : $t;
}
# A started first and took the lease; B follows.
ok(CxTest::wait_until(sub { holder() eq 'A' }, 20, 'A leads'), 'instance A holds the scheduler lease');

my $t0 = time;
my $control = CxChaos::control($b, \@pids, clients => 2, pause => 0.2);
my @loads = map {
    my $s = $_;
    CxLoad->start($s, name => 'reads-' . $s->port, clients => 2,
        request => sub ($c, $n) { [GET => "/api/v1/pipelines/$pids[$n % @pids]/status", token => $admin] });
} ($a, $b);
sleep 4;
my $lease_ms = -1;    # the lease as Redis has it: the longest time to live seen on the key
for (1 .. 10) {
    my $ttl = CxTest::redis_cmd('PTTL', 'conduix:scheduler:leader') // -1;
    $lease_ms = $ttl if $ttl > $lease_ms;
    sleep 0.1;
}
my $held = holder();
my $tk = time;
kill 'KILL', -$pid_a;    # the master and every child at once: a machine that died
ok(CxTest::wait_until(sub { !$a->master_alive }, 10, 'instance A gone'), 'instance A is gone');
my $took;
CxTest::wait_until(sub { holder() eq 'B' and $took = time - $tk }, $LEASE + 20, 'B takes the lease');
sleep 8;
my @c = $control->stop;
my @rb = $loads[1]->stop;
$loads[0]->stop;
$sched = CxChaos::schedule_disable($b, $sched);
my ($failed, $stalled) = CxChaos::failures([(grep { $_->{status} != 200 } @rb), (grep { $_->{status} !~ /^(200|202|409)$/ } @c)], $b);

CxChaos::figure('requests to the survivor', scalar(@rb) + scalar(@c), '', @rb > 200);
CxChaos::figure('requests to the survivor failed', scalar(@$failed) . $stalled, '0', !@$failed)
    or do { diag(CxLoad::by_status(@$failed)); CxChaos::why_failed($failed, $b) };
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
my $f = CxChaos::fires($b, $sched, $sim);
my $bound = $LEASE + 2;
CxChaos::figure('scheduler lease before the kill (holder, time to live)', "$held, " . sprintf('%.1f s', $lease_ms / 1000),
    "A, $LEASE s", $held eq 'A' && $lease_ms > 0 && $lease_ms <= $LEASE * 1000);
CxChaos::figure('lease taken by the survivor after the kill', defined $took ? sprintf('%.1f s', $took) : 'never',
    "lease + 2 s = $bound s", defined $took && $took < $bound);
my ($first) = grep { $_ > 0 } map { $_ - $tk } @{ $f->{created} };
CxChaos::figure('first fire on the survivor after the kill', defined $first ? sprintf('%.1f s', $first) : 'none',
    "lease + 2 s = $bound s", defined $first && $first < $bound);
# the fire times of the handover (at most lease + 2 s of them) but the latest are counted missed
CxChaos::fire_figures('schedule @every 2s', int($bound / 2), $f);
is($b->stop, 0, 'the survivor stops cleanly');
done_testing;
