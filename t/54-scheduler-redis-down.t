# 54-scheduler-redis-down.t -- with Redis down the schedulers keep firing, exactly once, through MySQL
# alone: two instances both fire (no lease to hold), each fire time of three @every 1s schedules is one
# run, never two, and nothing is lost. A third instance with scheduler.enabled: false never fires, with or
# without Redis. When Redis is back, one instance leads again. No agent is registered, so each fire is
# recorded as a failed run (no agent online): the claim is what is under test. Stops the shared Redis
# (CxTest restarts it at exit whatever happens).
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use Time::HiRes qw(time sleep);

my %cfg = ('scheduler.leader_lease' => '3s');
my $a = CxTest->new(config => \%cfg);
$a->start;
my $b = $a->replica(config => \%cfg);
$b->start;
my $off = $a->replica(config => { %cfg, 'scheduler.enabled' => 'false' });
$off->start;
my @on = ($a, $b);
my $S = '/api/v1/schedules';

my @sched;
for my $i (1 .. 3) {
    my $p = CxAgent::create_pipeline($a, "t54-pipe-$i");
    my $r = $a->auth_post($S, { pipeline_id => $p->{id}, cron_expression => '@every 1s' });
    die "create: $r->{content}" unless $r->{status} == 201;
    push @sched, $r->{json}{data}{id};
}
sub firing($s) { ($s->metric('conduix_scheduler_leader') // 0) == 1 }
sub runs($sid) {
    $a->sql('SELECT id, status, error_message, UNIX_TIMESTAMP(scheduled_for) AS fire FROM pipeline_runs WHERE schedule_id = ?
        ORDER BY scheduled_for', $sid);
}

ok(wait_until(sub { (grep { firing($_) } @on) == 1 }, 20, 'one leader'), 'with Redis: one of the two enabled instances leads');
ok(!firing($off), 'the disabled one does not');
ok(wait_until(sub { !grep { @{ runs($_) } < 2 } @sched }, 20, 'fires'), 'the schedules fire');
{
    my ($r) = @{ runs($sched[0]) };
    is($r->{status}, 'failed', 'with no agent a fire is a failed run');
    like($r->{error_message}, qr/no agent/, 'that says why');
}

# ---- Redis goes away ----
$a->stop_redis;
my $down = $a->sql('SELECT UNIX_TIMESTAMP(NOW(3)) AS t')->[0]{t};
ok(wait_until(sub { (grep { firing($_) } @on) == 2 }, 20, 'both fire'), 'Redis down: both enabled instances fire');
ok(!firing($off), 'the disabled one still does not');
sleep 8;
for my $s (@on) {
    like($s->log, qr/Redis is unavailable: firing through MySQL alone/, 'the instance logs that it fires through MySQL alone');
}
for my $sid (@sched) {
    my @f = map { $_->{fire} } grep { $_->{fire} > $down } @{ runs($sid) };
    my %n;
    $n{$_}++ for @f;
    cmp_ok(scalar @f, '>=', 5, "schedule $sid fired while Redis was down (" . scalar(@f) . ' runs)');
    is_deeply([grep { $n{$_} > 1 } sort keys %n], [], "schedule $sid: no fire time twice");
    my $sd = $a->auth_get("$S/$sid")->{json}{data};
    my @gaps = grep { $f[$_] - $f[$_ - 1] != 1 } 1 .. $#f;
    cmp_ok(scalar(@gaps), '<=', $sd->{missed}, "schedule $sid: every gap is counted missed (gaps " . scalar(@gaps) .
        ", missed $sd->{missed})");
}
my $runs = $a->sql('SELECT id FROM pipeline_runs WHERE schedule_id IS NOT NULL');
my @where = map { my $id = $_->{id}; scalar grep { index($_->log, "run $id of pipeline") >= 0 } $a, $b, $off } @$runs;
is_deeply([grep { $_ != 1 } @where], [], 'each run was recorded by exactly one instance');
is(scalar(grep { index($off->log, "run $_->{id} of pipeline") >= 0 } @$runs), 0, 'none by the disabled instance');

# ---- Redis is back ----
$a->start_redis;
ok(wait_until(sub { (grep { firing($_) } @on) == 1 }, 30, 'one leader again'), 'Redis back: one instance leads again');
like(join('', map { $_->log } @on), qr/Redis is back: leader election again/, 'logged');
ok(!firing($off), 'the disabled one never led');
unlike($off->log, qr/this instance leads/, 'its log never says it led');

$_->stop for $off, $b, $a;
done_testing;
