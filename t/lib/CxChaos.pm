# CxChaos -- the pieces of the chaos suite (t/chaos/*.t, `make check-chaos`): a server with agent
# timings short enough to see faults, conduix-agent-sim agents, lifecycle traffic that records every
# command it creates, the accounting of those commands (delivered, lost, duplicated), the ghost check
# (pipelines agents run without a run of ours, runs we think active that no agent runs), the schedule
# part (created and counted through the API, for when schedules exist), and the figures: each one an
# assertion, and a row of the summary table (t/chaos/99-summary.t).
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
# stops of one run are two calls of the client's, not a duplicate).
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
    return { created => scalar @ids, delivered => scalar(keys %got), cancelled => scalar(grep { ($st->{$_} // '') eq 'cancelled' } @ids),
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

# ---- schedules (branch sched): created and counted through the API only ----

# unix_time -- an RFC 3339 UTC time of the API ("2026-11-25T21:00:00.123Z") in Unix seconds.
sub unix_time($t) {
    my ($y, $mo, $d, $h, $mi, $sec) = ($t // '') =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d(?:\.\d+)?)Z$/ or return 0;
    return Time::Local::timegm(0, $mi, $h, $d, $mo - 1, $y) + $sec;
}

# schedules_built -- does this server have the schedules API (POST /schedules is a route)?
sub schedules_built($s) {
    my $r = $s->auth_post('/api/v1/schedules', {});
    return !($r->{status} == 404 && ($r->{json}{error} // '') eq 'no such endpoint');
}

# schedule_every -- a schedule firing PIPELINE every EVERY ("2s"), overlap allowed; its id.
sub schedule_every($s, $pid, $every = '2s') {
    my $r = $s->auth_post('/api/v1/schedules', { pipeline_id => $pid, cron_expression => "\@every $every",
        overlap_policy => 'allow' });
    croak "CxChaos: schedule for $pid: $r->{status} $r->{content}" unless $r->{status} == 201;
    return $r->{json}{data}{id};
}

# fires -- the runs of PIPELINE started by a schedule since UNIX time T (history, trigger schedule), and
# how many of them are a second run for the same fire (the same schedule within a second of another).
sub fires($s, $pid, $t = 0) {
    my $r = $s->auth_get("/api/v1/pipelines/$pid/history?limit=500");
    my @runs = sort { $a->{t} <=> $b->{t} } map { { %$_, t => unix_time($_->{created_at}) } }
        grep { ($_->{trigger} // '') eq 'schedule' } @{ $r->{json}{data} // [] };
    @runs = grep { $_->{t} >= $t } @runs;
    my $doubled = grep { $_ > 0 && $runs[$_]{t} - $runs[ $_ - 1 ]{t} < 1 } 0 .. $#runs;
    return { observed => scalar @runs, doubled => $doubled };
}

1;
