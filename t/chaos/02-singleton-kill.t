# chaos 2 -- the scheduler, hbmon and the dispatcher SIGKILLed in turn (four times each) under
# start/stop traffic on acknowledging agents (conduix-agent-sim): no command created is lost (each is
# delivered or, by design, cancelled), none is duplicated, no pipeline is left running on an agent
# without a run of ours (a ghost) or the other way round, and no agent is wrongly declared offline.
# Meanwhile two schedules fire every 2 s (overlap replace: each fire stops the previous run and starts
# one on an agent): every fire time is a run or, when a killed scheduler was away over a fire time and
# the next, counted missed (the latest fire within scheduler.starting_deadline runs late, once); none is
# lost or doubled (two runs of one scheduled_for, or a start executed twice), and the commands of the
# fires are accounted for like the others.
use v5.36;
use Test::More;
use CxTest;
use CxLoad;
use CxChaos;
use Time::HiRes qw(sleep time);

CxChaos::scenario('2 scheduler, hbmon, dispatcher SIGKILL');
my $s = CxChaos::server(workers => 4);
ok($s->wait_children, 'children up');
my $sim = CxChaos::sim($s, 'c2', '-n', 4, '--prefix', 'c2-agent-');
ok(CxTest::wait_until(sub { CxChaos::online($s, 'c2-agent-') == 4 }, 30, 'agents online'), '4 agents online');
my @pids = CxChaos::pipelines($s, 12, 'c2');

# Two schedules fire on two pipelines of their own.
my @spids = CxChaos::pipelines($s, 2, 'c2-sched');
my @sched = map { CxChaos::schedule_every($s, $_, 2) } @spids;

my $t0 = time;
my $control = CxChaos::control($s, \@pids, clients => 3, pause => 0.1);
my $reads = CxLoad->start($s, name => 'reads', clients => 2,
    request => sub ($c, $n) { [GET => "/api/v1/pipelines/$pids[$n % @pids]/status", token => $s->admin_token] });
sleep 2;
my @kills;
for my $round (1 .. 4) {
    for my $kind (qw(scheduler hbmon dispatcher)) {
        my $victim = $s->child_pid($kind) // next;
        kill 'KILL', $victim;
        push @kills, { kind => $kind, t => time };
        CxTest::wait_until(sub { my $p = $s->child_pid($kind); $p && $p != $victim }, 20, "$kind respawned");
        sleep 1;
    }
}
sleep 2;
my @c = $control->stop;
my @rd = $reads->stop;
@sched = map { CxChaos::schedule_disable($s, $_) } @sched;
my %created = CxChaos::created(@c);
my $acc = CxChaos::accounting($s, \%created, $sim);
my %fired = map { ($_->{id} => $_) } @{ $s->sql('SELECT id FROM agent_commands WHERE pipeline_id IN (?, ?)', @spids) };
my $facc = CxChaos::accounting($s, \%fired, $sim);
diag('command statuses: ' . join(', ', map { "$_ $acc->{statuses}{$_}" } sort keys %{ $acc->{statuses} }));
diag("lost: @{ $acc->{lost} }[0 .. 9]") if @{ $acc->{lost} };
my $g = CxChaos::ghosts($s, 'c2-agent-');
my ($bad, $stalled) = CxChaos::failures([(grep { $_->{status} != 200 } @rd), (grep { $_->{status} !~ /^(200|202|409)$/ } @c)], $s);

CxChaos::figure('kills (scheduler, hbmon, dispatcher)', scalar(@kills), '12', @kills == 12);
CxChaos::figure('requests sent', scalar(@c) + scalar(@rd), '', @c + @rd > 100);
CxChaos::figure('requests failed', scalar(@$bad) . ' (' . CxLoad::by_status(@$bad) . ")$stalled", '0', !@$bad)
    or CxChaos::why_failed($bad, $s);
CxChaos::figure('commands created', $acc->{created}, '', $acc->{created} > 50);
CxChaos::figure('commands delivered', "$acc->{delivered} (+ $acc->{cancelled} cancelled by a later stop)", '', 1);
CxChaos::figure('commands lost', scalar @{ $acc->{lost} }, '0', !@{ $acc->{lost} });
CxChaos::figure('commands duplicated (executed twice by an agent, or two starts of one run)', scalar @{ $acc->{duplicated} }, '0',
    !@{ $acc->{duplicated} })
    or diag explain $acc->{duplicated};
CxChaos::figure('ghost pipelines (agent runs it, no run of ours)', scalar @{ $g->{ghosts} }, '0', !@{ $g->{ghosts} })
    or diag explain $g->{ghosts};
CxChaos::figure('runs active by our books, not on their agent', scalar @{ $g->{orphans} }, '0', !@{ $g->{orphans} })
    or diag explain $g->{orphans};
my $off = CxChaos::offline_transitions($s, 'c2-agent-', $t0);
CxChaos::figure('agents wrongly declared offline', $off, '0', $off == 0);

my @f = map { CxChaos::fires($s, $_, $sim) } @sched;
my $skills = grep { $_->{kind} eq 'scheduler' } @kills;
CxChaos::fire_figures('2 schedules @every 2s', $skills, @f);
CxChaos::figure('commands of the fires (replace: a stop and a start) created / delivered / cancelled / lost / duplicated',
    "$facc->{created} / $facc->{delivered} / $facc->{cancelled} / " . scalar(@{ $facc->{lost} }) . ' / ' . scalar(@{ $facc->{duplicated} }),
    '0 lost, 0 duplicated', $facc->{created} > 0 && !@{ $facc->{lost} } && !@{ $facc->{duplicated} })
    or diag explain $facc;
is($s->stop, 0, 'stop exits 0');
done_testing;
