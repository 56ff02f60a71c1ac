# CxChaos -- the pieces of the chaos suite (t/chaos/*.t, `make check-chaos`): a server with agent
# timings short enough to see faults, conduix-agent-sim agents, lifecycle traffic that records every
# command it creates, the accounting of those commands (delivered, lost, duplicated), the ghost check
# (pipelines agents run without a run of ours, runs we think active that no agent runs), the schedules
# that fire meanwhile (created, disabled and counted through the API: each fire time a run, counted
# missed, or lost; doubles told by scheduled_for), and the figures: each one an assertion, and a row of
# the summary table (t/chaos/99-summary.t).
#
#   use CxChaos;
#   CxChaos::scenario('1 worker SIGKILL x10');
#   my $s = CxChaos::server(workers => 4);
#   my $sim = CxChaos::sim($s, 'a', '-n', 4, '--prefix', 'c1-');
#   CxChaos::figure('failed requests', $failed, '== in flight', $failed <= $inflight);
package CxChaos;

use v5.36;
use Carp qw(croak);
use File::Path qw(make_path);
use JSON::PP;
use POSIX ();
use Test::More ();
use Time::HiRes qw(sleep time);
use Time::Local ();
use CxTest qw(run_cmd);
use CxLoad;

our $SIM = "$CxTest::BUILDDIR/src/conduix-agent-sim";
our $FIGURES = "$CxTest::BUILDDIR/t/chaos/figures";

# Agent and command timings: an agent silent 5 s is offline (so a wrong verdict shows within the
# scenario), unacknowledged commands are sent again every second.
our %CONFIG = ('agents.heartbeat_timeout' => '5s', 'agents.monitor_interval' => '500ms',
    'commands.redeliver_interval' => '1s', 'commands.ttl' => '5m');

my $JSON = JSON::PP->new->canonical;
my $current;
my @sims;

# scenario -- the name of the scenario whose figures follow (one figures file each).
sub scenario($name) {
    $current = $name;
    make_path($FIGURES);
    (my $file = $name) =~ s/[^A-Za-z0-9]+/-/g;
    $current = { name => $name, file => "$FIGURES/$file.json", rows => [] };
    unlink $current->{file};
    Test::More::note("chaos scenario: $name");
}

# figure -- one measured figure: a test (ok when $ok), a line of output, a row of the summary.
sub figure($label, $value, $bound, $ok) {
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    croak 'CxChaos: figure before scenario' unless ref $current;
    Test::More::ok($ok, "$label: $value" . (length $bound ? " (bound: $bound)" : ''));
    push @{ $current->{rows} }, { figure => $label, value => "$value", bound => "$bound", ok => $ok ? 1 : 0 };
    open(my $fh, '>', $current->{file}) or croak "CxChaos: $current->{file}: $!";
    print $fh $JSON->encode({ scenario => $current->{name}, rows => $current->{rows} });
    close $fh;
    return $ok;
}

# server -- a started CxTest with the chaos timings; config => {...} overrides, other options as CxTest->new.
sub server(%o) {
    my $cfg = delete $o{config} // {};
    my $s = CxTest->new(workers => 4, %o, config => { %CONFIG, %$cfg });
    $s->start;
    return $s;
}

# sim -- conduix-agent-sim with ARGS (1 s heartbeats and metrics, quiet, logging its commands); waits
# until it has subscribed. {h, log, name}.
sub sim($s, $name, @args) {
    Test::More::BAIL_OUT("no $SIM: build it first (make)") unless -x $SIM;
    my $log = $s->tmp . "/sim-$name.log";
    my $h = run_cmd({ tmp => $s->tmp, background => 1 }, $SIM, '-p', $CxTest::REDIS_PORT, '-i', '1s',
        '--metrics-interval', '1s', '--log', $log, '-q', @args);
    my $sim = { h => $h, log => $log, name => $name };
    push @sims, $sim;
    CxTest::wait_until(sub { sim_events($sim, 'ready') }, 30, "simulator $name ready")
        or Test::More::BAIL_OUT("simulator $name did not start");
    return $sim;
}

sub sim_events($sim, $event = 'command') {
    open(my $fh, '<', $sim->{log}) or return ();
    return grep { ($_->{event} // '') eq $event } map { eval { decode_json($_) } // () } <$fh>;
}

sub sim_stop($sim) {
    return unless $sim->{h};
    kill 'TERM', $sim->{h}{pid};
    CxTest::finish_cmd($sim->{h}, 10);
    delete $sim->{h};
}

END { sim_stop($_) for @sims }

# pipelines -- N new pipelines named PREFIX-i; their ids.
sub pipelines($s, $n, $prefix) {
    my @ids;
    for my $i (1 .. $n) {
        my $r = $s->auth_post('/api/v1/pipelines', { name => "$prefix-$i", description => 'chaos',
            config_yaml => "source:\n  type: kafka\n  topic: $prefix-$i\nsink:\n  type: stdout\n" });
        croak "CxChaos: pipeline $prefix-$i: $r->{status} $r->{content}" unless $r->{status} == 201;
        push @ids, $r->{json}{data}{id};
    }
    return @ids;
}

# online -- how many of the agents whose ids start with PREFIX the registry has online.
sub online($s, $prefix) {
    return $s->sql("SELECT COUNT(*) AS n FROM agents WHERE status = 'online' AND id LIKE ?", "$prefix%")->[0]{n};
}

# offline_transitions -- transitions to offline recorded for PREFIX's agents since UNIX time T.
sub offline_transitions($s, $prefix, $t) {
    return $s->sql("SELECT COUNT(*) AS n FROM agent_status_transitions WHERE agent_id LIKE ? AND to_status = 'offline'"
        . ' AND `at` >= ?', "$prefix%", POSIX::strftime('%Y-%m-%d %H:%M:%S', gmtime($t)))->[0]{n};    # `at` is UTC
}

# control -- lifecycle traffic: CLIENTS clients, each starting and stopping its share of PIPELINES in
# turn (a 409 from the state the pipeline is in flips its turn), PAUSE seconds apart; the note of each
# record is the id of the command it created (200 or 202), else '-'.
sub control($s, $pids, %o) {
    my $clients = $o{clients} // 2;
    my $token = $o{token} // $s->token(role => 'operator', sub => 'chaos-operator');
    my %running;
    return CxLoad->start($s, name => $o{name} // 'control', clients => $clients, pause => $o{pause} // 0.1, flush => 1,
        request => sub ($c, $n) {
            my @mine = grep { ($_ % $clients) + 1 == $c } 0 .. $#$pids;
            my $p = $pids->[ $mine[ $n % @mine ] ];
            return [POST => "/api/v1/pipelines/$p/" . ($running{$p} ? 'stop' : 'start'), token => $token];
        },
        note => sub ($r) { ref $r->{json} eq 'HASH' && ref $r->{json}{data} eq 'HASH' && $r->{json}{data}{command}
            ? $r->{json}{data}{command}{id} : '-' },
        %{ $o{load} // {} },
        after => sub ($c, $n, $r) {
            my @mine = grep { ($_ % $clients) + 1 == $c } 0 .. $#$pids;
            my $p = $pids->[ $mine[ $n % @mine ] ];
            if ($r->{status} == 200 || $r->{status} == 202) { $running{$p} = !$running{$p} }
            elsif ($r->{status} == 409) { $running{$p} = !$running{$p} }    # it was in the other state already
        });
}

# created -- the commands the control traffic created: {command id => record}.
sub created(@records) {
    return map { ($_->{note} => $_) } grep { $_->{note} ne '-' && ($_->{status} == 200 || $_->{status} == 202) } @records;
}

# settle -- wait until none of the commands is queued or sent any more (delivered and acknowledged,
# cancelled, failed or expired); their statuses {id => status}.
sub settle($s, $ids, $timeout = 60) {
    my %st;
    CxTest::wait_until(sub {
        %st = ();
        my @ids = @$ids;
        while (my @chunk = splice(@ids, 0, 500)) {
            my $rows = $s->sql('SELECT id, status FROM agent_commands WHERE id IN (' . join(',', ('?') x @chunk) . ')', @chunk);
            $st{ $_->{id} } = $_->{status} for @$rows;
        }
        !grep { ($st{$_} // 'missing') =~ /^(queued|sent)$/ } @$ids;
    }, $timeout, 'every command settled');
    return \%st;
}

# accounting -- what became of the commands CREATED ({id => record}) on the agents of SIMS: created,
# delivered (received by an agent), cancelled (superseded by design: a stop before the start was
# acknowledged, a finished run), lost (neither delivered nor cancelled, or still waiting, or missing),
# duplicated (one command executed twice by an agent, or two start_pipeline commands for one run; two
# stops of one run are two calls of the client's, not a duplicate); status: {id => its final status}.
sub accounting($s, $created, @sims) {
    my @ids = sort keys %$created;
    my $st = settle($s, \@ids);
    my (%got, %exec, %per_run);
    for my $sim (@sims) {
        for my $e (sim_events($sim)) {
            next unless exists $created->{ $e->{command_id} };
            $got{ $e->{command_id} }++;
            $exec{ $e->{command_id} }++ unless $e->{repeat};
            $per_run{ $e->{run_id} }{ $e->{command_id} } = 1 if $e->{run_id} && $e->{type} eq 'start_pipeline';
        }
    }
    my @lost = grep { !$got{$_} && ($st->{$_} // 'missing') ne 'cancelled' } @ids;
    my @dup = ((grep { $exec{$_} > 1 } keys %exec), (grep { keys %{ $per_run{$_} } > 1 } keys %per_run));
    return { created => scalar @ids, delivered => scalar(keys %got), status => $st, cancelled => scalar(grep { ($st->{$_} // '') eq 'cancelled' } @ids),
        lost => \@lost, duplicated => \@dup, redelivered => scalar(grep { $got{$_} > 1 } keys %got),
        statuses => { map { my $x = $_; ($x => scalar grep { ($st->{$_} // 'missing') eq $x } @ids) } qw(acked failed cancelled expired queued sent missing) } };
}

# ghosts -- compare what the agents of PREFIX report running (their heartbeat keys) with the active
# runs of MySQL, until they agree or TIMEOUT: {ghosts => ["agent/pipeline" run by an agent without an
# active run of ours there], orphans => ["agent/pipeline" running by our books, not on its agent]}.
sub ghosts($s, $prefix, $timeout = 15) {
    my $res;
    CxTest::wait_until(sub {
        my (%reported, %ours);
        my $keys = CxTest::redis_cmd('KEYS', "agent:$prefix*:heartbeat") // [];
        for my $k (@$keys) {
            my $b = eval { decode_json(CxTest::redis_cmd('GET', $k) // '{}') } // {};
            $reported{"$b->{agent_id}/$_"} = 1 for @{ $b->{pipelines} // [] };
        }
        my $runs = $s->sql("SELECT pipeline_id, agent_id, status FROM pipeline_runs WHERE status IN ('pending', 'running', 'paused')"
            . ' AND agent_id LIKE ?', "$prefix%");
        my %active = map { ("$_->{agent_id}/$_->{pipeline_id}" => $_->{status}) } @$runs;
        $res = { ghosts => [sort grep { !$active{$_} } keys %reported],
            orphans => [sort grep { $active{$_} ne 'pending' && !$reported{$_} } keys %active] };
        !@{ $res->{ghosts} } && !@{ $res->{orphans} };
    }, $timeout, 'agents and runs agree');
    return $res;
}

# why_failed -- diagnostics for failed requests RECORDS: the first of them, and the warnings and errors
# of the servers' logs (not the access lines), for a figure that failed.
sub why_failed($records, @servers) {
    Test::More::diag(sprintf('failed: %s %s at %.3f: %d %s', $_->{method}, $_->{path}, $_->{t}, $_->{status}, $_->{code}))
        for grep { defined } @$records[0 .. 4];
    for my $s (@servers) {
        my @l = grep { ($_->{type} // '') ne 'access' && ($_->{level} // '') =~ /^(warn|error)/ } $s->log_lines;
        Test::More::diag('log of ' . $s->port . ": $_->{time} $_->{level} " . ($_->{proc} // '') . ": $_->{msg}") for @l[0 .. ($#l < 19 ? $#l : 19)];
    }
}

# mysql_stalls -- the moments MySQL left a process of S without an answer for its whole call timeout
# (its log: "no answer within N ms") on the loaded machine, until it answered again ("connected ...
# again"): [from, to] in Unix seconds. Its breaker answered 503 DATABASE_UNAVAILABLE meanwhile, as it
# must; a scenario about another fault does not count those answers as its own failures.
sub mysql_stalls($s) {
    my (@w, %open);
    for my $l ($s->log_lines) {
        my $m = $l->{msg} // next;
        my $t = unix_time($l->{time});
        if ($m =~ /^mysql: .*no answer within (\d+) ms/) {
            push @w, [$t - $1 / 1000 - 0.05, $t + 1];
            $open{ $l->{pid} } = $w[-1];
        } elsif ($m =~ /^mysql: connected to .* again after/ && $open{ $l->{pid} }) {
            delete($open{ $l->{pid} })->[1] = $t + 0.05;
        }
    }
    return @w;
}

# stalled -- split failed RECORDS into (answers 503 DATABASE_UNAVAILABLE during one of STALLS, the rest).
sub stalled($records, @stalls) {
    my (@in, @out);
    for my $r (@$records) {
        my $hit = $r->{status} == 503 && $r->{code} eq 'DATABASE_UNAVAILABLE'
            && grep { $r->{t} + $r->{dt} >= $_->[0] && $r->{t} <= $_->[1] } @stalls;
        push @{ $hit ? \@in : \@out }, $r;
    }
    return (\@in, \@out);
}

# failures -- the failed RECORDS but those answered 503 DATABASE_UNAVAILABLE while MySQL stalled for a
# process of one of SERVERS, and a note of how many those were ('' for none).
sub failures($records, @servers) {
    my ($in, $out) = stalled($records, map { mysql_stalls($_) } @servers);
    return ($out, @$in ? ' + ' . @$in . ' answered 503 while MySQL stalled (the machine)' : '');
}

# ---- schedules: created, stopped and counted through the API; doubles told by scheduled_for ----

# unix_time -- an RFC 3339 UTC time of the API ("2026-11-25T21:00:00.123Z") in Unix seconds.
sub unix_time($t) {
    my ($y, $mo, $d, $h, $mi, $sec) = ($t // '') =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d(?:\.\d+)?)Z$/ or return 0;
    return Time::Local::timegm(0, $mi, $h, $d, $mo - 1, $y) + $sec;
}

# created_ms -- the creation times of RUNS to the millisecond (the API gives whole seconds): [{id, t}],
# t in Unix seconds whatever the time zone of this session (the server writes UTC).
sub created_ms($s, @runs) {
    return [] unless @runs;
    return $s->sql("SELECT id, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', created_at) / 1000000 AS t FROM pipeline_runs"
        . ' WHERE id IN (' . join(',', ('?') x @runs) . ')', @runs);
}

# schedule_every -- a schedule firing PIPELINE every EVERY seconds, overlap replace (so every fire is a
# run on an agent: the previous run stopped, a start_pipeline sent); the Schedule as created.
sub schedule_every($s, $pid, $every = 2) {
    my $r = $s->auth_post('/api/v1/schedules', { pipeline_id => $pid, cron_expression => "\@every ${every}s",
        overlap_policy => 'replace' });
    croak "CxChaos: schedule for $pid: $r->{status} $r->{content}" unless $r->{status} == 201;
    return { %{ $r->{json}{data} }, every => $every, first_fire => unix_time($r->{json}{data}{next_run_at}) };
}

# schedule_disable -- disable SCHEDULE (the end of its firing window): the Schedule after it, with
# `disabled_at`, the server's time of the change in Unix seconds.
sub schedule_disable($s, $sched) {
    my $r = $s->auth_post("/api/v1/schedules/$sched->{id}/disable");
    croak "CxChaos: disable $sched->{id}: $r->{status} $r->{content}" unless $r->{status} == 200;
    return { %$sched, %{ $r->{json}{data} }, disabled_at => unix_time($r->{json}{data}{updated_at}) };
}

# fires -- what became of the fire times of SCHEDULE (as schedule_disable returned it, so the window is
# closed) according to the API (the pipeline's history: the runs with trigger schedule and this
# schedule_id, each with its scheduled_for; the schedule's counters) and the agents of SIMS:
#   clock    fire times the clock gave from the first next_run_at (at its creation) to the disable
#   runs     distinct scheduled_for among the runs (a run started, or recorded failed)
#   missed   the schedule's own count of fire times that passed while no scheduler ran
#   lost     fire times between the first and the last run with neither a run nor a count as missed
#   doubled  scheduled_for times with two runs, and runs whose start_pipeline an agent executed twice
#   lag      the worst time from a scheduled_for to its run's creation (seconds)
#   created  the runs' creation times, oldest first (Unix seconds, to the millisecond)
#   started  runs an agent executed a start_pipeline for
#   unstarted  the other runs, but those whose start was cancelled (replaced before it was delivered)
sub fires($s, $sched, @sims) {
    my $sid = $sched->{id};
    my $d = $s->auth_get("/api/v1/schedules/$sid")->{json}{data} // {};
    my $h = $s->auth_get("/api/v1/pipelines/$sched->{pipeline_id}/history?limit=500")->{json}{data} // [];
    my @runs = grep { ($_->{trigger} // '') eq 'schedule' && ($_->{schedule_id} // '') eq $sid } @$h;
    my (%per, %exec, $lag, @created);
    my %ms = map { ($_->{id} => $_->{t}) } @{ created_ms($s, map { $_->{id} } @runs) };
    for my $r (@runs) {
        my $f = unix_time($r->{scheduled_for});
        push @{ $per{$f} }, $r->{id};
        my $c = $ms{ $r->{id} } // unix_time($r->{created_at});
        push @created, $c;
        $lag = $c - $f if !defined $lag || $c - $f > $lag;
    }
    my %mine = map { ($_->{id} => 1) } @runs;
    for my $sim (@sims) {
        $exec{ $_->{run_id} }++ for grep { $_->{type} eq 'start_pipeline' && !$_->{repeat} && $mine{ $_->{run_id} // '' } } sim_events($sim);
    }
    # a run no agent was told to start: its start superseded by the next fire's replace before it was
    # delivered (cancelled, by design), else a fault
    my @unstarted;
    for my $r (grep { !$exec{ $_->{id} } } @runs) {
        my $c = $s->sql("SELECT status FROM agent_commands WHERE run_id = ? AND type = 'start_pipeline'", $r->{id});
        push @unstarted, "run $r->{id} ($r->{status}): start " . join(',', map { $_->{status} } @$c)
            unless @$c && !grep { $_->{status} ne 'cancelled' } @$c;
    }
    my @f = sort { $a <=> $b } keys %per;
    my $every = $sched->{every};
    my $first = $sched->{first_fire};
    my $clock = $sched->{disabled_at} >= $first ? int(($sched->{disabled_at} - $first) / $every) + 1 : 0;
    my $slots = @f ? ($f[-1] - $f[0]) / $every + 1 : 0;
    my $gaps = $slots - @f;
    my $missed = $d->{missed} // 0;
    return { clock => $clock, runs => scalar @f, missed => $missed, lost => $gaps > $missed ? $gaps - $missed : 0,
        doubled => [(map { "$sid\@$_: runs @{ $per{$_} }" } grep { @{ $per{$_} } > 1 } @f),
            (map { "run $_ started $exec{$_} times" } grep { $exec{$_} > 1 } sort keys %exec)],
        lag => $lag // 0, started => scalar(keys %exec), unstarted => \@unstarted, counters => $d,
        created => [sort { $a <=> $b } @created] };
}

# fire_figures -- the figures of the schedules' fires (each a fires() result, named by LABEL): fire times
# by the clock and what became of them (runs + counted missed within one of the clock: none stopped
# firing), none lost, at most MAX_MISSED counted missed, none doubled, every run started on an agent.
sub fire_figures($label, $max_missed, @f) {
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my %t;
    for my $f (@f) { $t{$_} += $f->{$_} for qw(clock runs missed lost started) }
    my @doubled = map { @{ $_->{doubled} } } @f;
    my $lag = 0;
    for (@f) { $lag = $_->{lag} if $_->{lag} > $lag }
    my $slack = scalar @f;    # the fire at the moment of the disable may or may not have run, per schedule
    figure("$label: fire times by the clock / runs / counted missed", "$t{clock} / $t{runs} / $t{missed}",
        'runs + missed = clock, +/- 1 a schedule', abs($t{runs} + $t{missed} - $t{clock}) <= $slack);
    figure("$label: fire times lost (neither run nor counted missed)", $t{lost}, '0', $t{lost} == 0);
    figure("$label: fire times counted missed", $t{missed}, "at most $max_missed", $t{missed} <= $max_missed);
    figure("$label: fires doubled (two runs of one scheduled_for, or a start executed twice)", scalar @doubled, '0', !@doubled)
        or Test::More::diag(Test::More::explain(\@doubled));
    my @unstarted = map { @{ $_->{unstarted} } } @f;
    figure("$label: runs started on an agent", "$t{started} of $t{runs}" . (@unstarted < $t{runs} - $t{started}
        ? ' (+ ' . ($t{runs} - $t{started} - @unstarted) . ' replaced before their start was delivered)' : ''),
        'all but those replaced', $t{runs} > 0 && !@unstarted) or Test::More::diag(Test::More::explain(\@unstarted));
    figure("$label: worst fire lag (scheduled_for to its run)", sprintf('%.1f s', $lag), 'the starting deadline (5 min)', $lag < 300);
}

1;
