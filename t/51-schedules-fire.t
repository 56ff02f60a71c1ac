# 51-schedules-fire.t -- the scheduler child fires, against conduix-agent-sim agents whose runs complete
# by themselves (--run-for): an @every 2s schedule fires every 2 s, each fire one run on an agent (one
# start_pipeline received per run), with trigger schedule, its schedule_id and scheduled_for, no gap; the
# schedule's fires, last_run_id and last_run_status follow; a disable stops the fires within a second and
# an enable starts them again; an update takes effect within a second; the metrics count it all.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use Time::HiRes qw(time sleep);

my $s = CxAgent::server('scheduler.timezone' => 'Asia/Seoul');
my $S = '/api/v1/schedules';
my $oper = $s->token(role => 'operator', sub => 't51-oper');
my $SCALE = $CxTest::SCALE;
my $r;

my $sim = CxAgent::sim($s, 'a', '-n', 2, '--prefix', 't51-agent-', '--run-for', '500ms');
ok(wait_until(sub { $s->sql("SELECT COUNT(*) AS n FROM agents WHERE status = 'online'")->[0]{n} == 2 }, 20, 'agents online'),
    'two simulated agents online');
my $p = CxAgent::create_pipeline($s, 't51-pipe');

# runs -- the pipeline's scheduled runs, oldest fire first, with the fire as Unix seconds.
sub runs($sid) {
    return $s->sql("SELECT id, agent_id, `trigger`, status, schedule_id, UNIX_TIMESTAMP(scheduled_for) AS fire,
        UNIX_TIMESTAMP(created_at) AS created FROM pipeline_runs WHERE schedule_id = ? ORDER BY scheduled_for", $sid);
}
sub db_now() { $s->sql('SELECT UNIX_TIMESTAMP(NOW(3)) AS t')->[0]{t} }

# ---- @every 2s ----
$r = $s->post($S, { pipeline_id => $p->{id}, cron_expression => '@every 2s' }, token => $oper);
is($r->{status}, 201, 'an @every 2s schedule') or diag $r->{content};
my $sched = $r->{json}{data};
ok(wait_until(sub { @{ runs($sched->{id}) } >= 5 }, 30, 'five fires'), 'it fires');
my $runs = runs($sched->{id});
my @fires = map { $_->{fire} } @$runs;
is_deeply([map { $fires[$_] - $fires[$_ - 1] } 1 .. $#fires], [(2) x $#fires], 'one run every 2 s of fire time, no gap, none twice');
is_deeply([grep { $_->{trigger} ne 'schedule' } @$runs], [], 'every run has trigger schedule');
is_deeply([grep { !$_->{agent_id} } @$runs], [], 'every run is on an agent');
my @late = grep { $_->{created} - $_->{fire} > 1.5 * $SCALE } @$runs;
is_deeply(\@late, [], 'each run was created within 1.5 s of its fire time');
{
    my %starts;
    wait_until(sub {
        %starts = ();
        $starts{ $_->{run_id} }++ for grep { $_->{type} eq 'start_pipeline' && !$_->{repeat} } CxAgent::sim_lines($sim);
        !grep { !$starts{ $_->{id} } } @$runs;
    }, 10, 'every run started on an agent');
    is_deeply([grep { ($starts{ $_->{id} } // 0) != 1 } @$runs], [], 'each fire reached an agent as exactly one start_pipeline');
}
ok(wait_until(sub { $s->sql("SELECT status FROM pipeline_runs WHERE id = ?", $runs->[0]{id})->[0]{status} eq 'completed' }, 10,
    'the first run completed'), 'the runs complete (the agent says so)');
$r = $s->auth_get("$S/$sched->{id}");
my $d = $r->{json}{data};
my $n = $s->sql('SELECT COUNT(*) AS n FROM pipeline_runs WHERE schedule_id = ?', $sched->{id})->[0]{n};
ok($d->{fires} >= $n - 1 && $d->{fires} <= $n, "fires ($d->{fires}) counts the runs ($n)");
is($d->{skipped} + $d->{missed} + $d->{failures}, 0, 'nothing skipped, missed or failed');
my $latest = $s->sql('SELECT id FROM pipeline_runs WHERE schedule_id = ? ORDER BY scheduled_for DESC LIMIT 1', $sched->{id})->[0]{id};
ok(defined $d->{last_run_id}, 'last_run_id set');
like($d->{last_run_status} // '', qr/^(pending|running|completed)$/, 'last_run_status is the run\'s');
like($d->{last_run_at} // '', qr/Z$/, 'last_run_at set');
my $h = $s->auth_get("/api/v1/pipelines/$p->{id}/history?limit=1")->{json}{data}[0];
is($h->{trigger}, 'schedule', 'the history shows trigger schedule');
is($h->{schedule_id}, $sched->{id}, 'and the schedule');
like($h->{scheduled_for} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'and the fire time');
is($s->sql("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'schedule_fire' AND actor = 'scheduler' AND target_id = ?",
    $p->{id})->[0]{n} >= 5, 1, 'each fire has its audit row (actor scheduler)');

# ---- metrics ----
cmp_ok($s->metric('conduix_schedule_fires_total') // 0, '>=', 5, 'conduix_schedule_fires_total');
cmp_ok($s->metric('conduix_schedule_fire_lag_seconds_count') // 0, '>=', 5, 'the fire lag histogram counts the fires');
cmp_ok($s->metric('conduix_schedule_fire_lag_seconds_bucket{le="+Inf"}') // 0, '>=', 5, 'with its +Inf bucket');
is($s->metric('conduix_scheduler_leader'), 1, 'conduix_scheduler_leader 1 on the only instance');
ok(wait_until(sub { ($s->metric('conduix_schedules_enabled') // -1) == 1 }, 10, 'enabled gauge'), 'conduix_schedules_enabled 1');
is($s->redis('GET', 'conduix:scheduler:leader') =~ /:\d+:\d+$/ ? 1 : 0, 1, 'the lease is held in Redis');

# ---- disable stops the fires within a second ----
$r = $s->post("$S/$sched->{id}/disable", undef, token => $oper);
is($r->{status}, 200, 'disable');
my $off = db_now();
sleep 4;
my @after = grep { $_->{created} > $off + 1 } @{ runs($sched->{id}) };
is_deeply(\@after, [], 'no run created more than a second after the disable');
$r = $s->post("$S/$sched->{id}/enable", undef, token => $oper);
my $on = db_now();
ok(wait_until(sub { grep { $_->{created} > $on } @{ runs($sched->{id}) } }, 10, 'a fire after enable'), 'enable: it fires again');
{
    my ($first) = grep { $_->{created} > $on } @{ runs($sched->{id}) };
    cmp_ok($first->{fire} - int($on), '>=', 1, 'the first fire after enable is a new one (the disabled time is not caught up)');
}
$s->post("$S/$sched->{id}/disable", undef, token => $oper);

# ---- an update takes effect within a second ----
$r = $s->post($S, { pipeline_id => $p->{id}, cron_expression => '0 0 1 1 *' }, token => $oper);
my $yearly = $r->{json}{data};
sleep 1.5;    # the previous schedule's last run completes (its agent runs 500 ms)
$r = $s->put("$S/$yearly->{id}", { cron_expression => '@every 1s' }, token => $oper);
is($r->{status}, 200, 'PUT a yearly schedule to @every 1s');
my $changed = db_now();
ok(wait_until(sub { @{ runs($yearly->{id}) } > 0 }, 10, 'the changed schedule fires'), 'it fires');
cmp_ok(runs($yearly->{id})->[0]{created} - $changed, '<=', 2 + 1 * $SCALE, 'its first run came within its interval and a second');
$s->delete("$S/$yearly->{id}", token => $oper);

is($s->stop, 0, 'stop exits 0');
ok(!defined $s->redis('GET', 'conduix:scheduler:leader'), 'a scheduler that stops gives its lease back');
done_testing;
