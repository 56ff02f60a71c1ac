# chaos 3 -- Redis stopped for 30 s under load: no request waits a second, control calls answer 202
# (the command queued in MySQL), REST heartbeats keep the agents online, and every command queued
# meanwhile reaches its agent within 2 s of Redis's return, none lost. The agents are simulated
# (conduix-agent-sim --rest-fallback: heartbeats over REST while Redis is away).
use v5.36;
use Test::More;
use CxTest;
use CxLoad;
use CxChaos;
use Time::HiRes qw(sleep time);

CxChaos::scenario('3 Redis stopped 30 s');
my $OUTAGE = 30;
my $s = CxChaos::server(workers => 4);
my $sim = CxChaos::sim($s, 'c3', '-n', 4, '--prefix', 'c3-agent-', '--rest', $s->base_url, '--rest-fallback',
    '--jwt-secret', $s->secret);
ok(CxTest::wait_until(sub { CxChaos::online($s, 'c3-agent-') == 4 }, 30, 'agents online'), '4 agents online');
my @pids = CxChaos::pipelines($s, 16, 'c3');
my $admin = $s->admin_token;

my $control = CxChaos::control($s, \@pids, clients => 2, pause => 0.25);
my @loads = (
    CxLoad->start($s, name => 'reads', clients => 3,
        request => sub ($c, $n) { [GET => "/api/v1/pipelines/$pids[$n % @pids]/status", token => $admin] }),
    CxLoad->start($s, name => 'agents', clients => 1,
        request => sub ($c, $n) { [GET => '/api/v1/agents?page_size=10', token => $admin] }),
    CxLoad->start($s, name => 'health', clients => 2, keep_alive => 0, pause => 0.05, request => sub ($c, $n) { [GET => '/health'] }),
);
sleep 3;
my $t0 = time;
$s->stop_redis;
sleep $OUTAGE;
my $t1 = time;    # the outage ends: Redis is started
$s->start_redis;
my $tup = time;   # Redis answers a PING (start_redis polls it every 100 ms)
sleep 4;
my @c = $control->stop;
my @r = map { $_->stop } @loads;
my @all = (@c, @r);
my @during = CxLoad::between(\@all, $t0, $t1);
my @cdur = grep { $_->{note} ne '-' } CxLoad::between(\@c, $t0 + 0.5, $t1 - 0.5);
my @failed = grep { $_->{status} !~ /^(200|202|409)$/ } @all;

my %created = CxChaos::created(@c);
my $acc = CxChaos::accounting($s, \%created, $sim);
my %first;    # when each command reached its agent first (ms)
for my $e (CxChaos::sim_events($sim)) { $first{ $e->{command_id} } //= $e->{ts} / 1000 }
my @late = map { ($first{ $_->{note} } // 1e12) - $tup } @cdur;
my $worst = (sort { $b <=> $a } @late)[0] // 0;
diag(sprintf('%d requests during the outage (%s); %d commands queued meanwhile; Redis answered %.3f s after its start',
    scalar @during, CxLoad::by_status(@during), scalar @cdur, $tup - $t1));
diag(sprintf('slowest: %.3f s %s %s at +%.3f s', $_->{dt}, $_->{method}, $_->{path}, $_->{t} - $t0))
    for (sort { $b->{dt} <=> $a->{dt} } @during)[0 .. 4];

CxChaos::figure('requests sent during the outage', scalar @during, '', @during > 500);
CxChaos::figure('requests failed', scalar(@failed) . ' (' . CxLoad::by_status(@failed) . ')', '0', !@failed);
my $slow = CxLoad::max_dt(@during);
CxChaos::figure('slowest request during the outage', sprintf('%.3f s', $slow), '1 s', $slow < 1);
my $n202 = grep { $_->{status} == 202 } @cdur;
CxChaos::figure('control calls with Redis down answered 202', "$n202 of " . scalar(@cdur), 'all', @cdur > 10 && $n202 == @cdur);
my $off = CxChaos::offline_transitions($s, 'c3-agent-', $t0);
CxChaos::figure('agents declared offline during the outage', $off, '0 (REST heartbeats)', $off == 0);
CxChaos::figure('worst delivery of a queued command after Redis returned', sprintf('%.3f s', $worst), '2 s', $worst < 2);
CxChaos::figure('commands created / delivered / lost', "$acc->{created} / $acc->{delivered} / " . scalar @{ $acc->{lost} }, '0 lost',
    !@{ $acc->{lost} });
CxChaos::figure('commands duplicated (executed twice by an agent, or two starts of one run)', scalar @{ $acc->{duplicated} }, '0',
    !@{ $acc->{duplicated} });
my $g = CxChaos::ghosts($s, 'c3-agent-');
CxChaos::figure('ghosts / orphaned runs after the outage', scalar(@{ $g->{ghosts} }) . ' / ' . scalar(@{ $g->{orphans} }), '0 / 0',
    !@{ $g->{ghosts} } && !@{ $g->{orphans} }) or diag explain $g;
is($s->stop, 0, 'stop exits 0');
done_testing;
