# CxAgent -- a fake pipeline agent for the lifecycle tests (t/21..29): a forked process that speaks the
# agent protocol over Redis (docs/api.md, "Agent protocol") as a real agent would, with knobs for the cases the
# tests need, and that writes every command it receives to a file the test reads.
#
#   my $ag = CxAgent->new(id => 'agent-1', ack => 'all', beat => 1);
#   $ag->start;                    # forks; SUBSCRIBEs agent:commands:agent-1, SETs its heartbeat key
#   my @m = $ag->messages;         # [{channel, msg => {...}, at}], in the order received
#   $ag->kill;                     # SIGKILL: heartbeats stop, as when the machine dies
#
# Options: ack => 'all' (acknowledge every command, again for a repeated id), 'none' (a legacy agent),
# 'fail_start' (start_pipeline acknowledged with success:false); beat => seconds between heartbeats
# (0: none); events => 1 also publishes run_status events on pipeline:events; subscribe => 0 does not
# listen to the command channel (an agent that polls the REST fallback); port => Redis port;
# remember => N remembers only the last N command ids (real agents keep a few: a redelivered id older
# than that is run again); run => [pipeline ids] already runs these when it starts (a ghost the control
# plane did not start); stubborn => 1 refuses stop_pipeline (acknowledged success:false) and keeps running.
# The agent keeps the pipelines it runs (start adds, stop removes, pause/resume flip their status) and
# reports them in its heartbeats' pipelines and pipeline_stats. It reconnects when Redis goes away.
package CxAgent;

use v5.36;
use Carp qw(croak);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(:sys_wait_h strftime);
use Time::HiRes qw(time sleep);
use CxTest;

my $JSON = JSON::PP->new->utf8->canonical;
my @agents;

sub new($class, %o) {
    my $self = bless {
        id => $o{id} // croak('CxAgent: id required'),
        ack => $o{ack} // 'all',
        beat => $o{beat} // 1,
        events => $o{events} // 0,
        subscribe => $o{subscribe} // 1,
        remember => $o{remember},
        stubborn => $o{stubborn} // 0,
        running => { map { ($_ => { status => 'running', processed => 0 }) } @{ $o{run} // [] } },
        port => $o{port} // $CxTest::REDIS_PORT // 26389,
        file => $o{file} // sprintf('/tmp/cx-agent-%d-%s-%d.log', $$, $o{id} =~ s/[^A-Za-z0-9_-]/_/gr, scalar(@agents)),
        owner => $$,
    }, $class;
    unlink $self->{file};
    push @agents, $self;
    return $self;
}

sub id($ag) { $ag->{id} }
sub file($ag) { $ag->{file} }

sub start($ag) {
    open(my $fh, '>', $ag->{file}) or croak "CxAgent: $ag->{file}: $!";
    close $fh;
    my $pid = fork // croak "CxAgent: fork: $!";
    if (!$pid) {
        $SIG{INT} = $SIG{TERM} = 'DEFAULT';
        eval { $ag->run };
        print STDERR "CxAgent $ag->{id}: $@" if $@;
        POSIX::_exit(0);
    }
    $ag->{pid} = $pid;
    # ready once subscribed (the first line of the file)
    my $deadline = time + 20;
    while (time < $deadline) {
        return $ag if grep { $_->{ready} } $ag->lines;
        sleep 0.05;
    }
    croak "CxAgent $ag->{id}: did not subscribe within 20 s";
}

sub kill($ag) {
    return unless $ag->{pid};
    local $?;
    CORE::kill 'KILL', $ag->{pid};
    waitpid($ag->{pid}, 0);
    delete $ag->{pid};
}

sub lines($ag) {
    open(my $fh, '<', $ag->{file}) or return ();
    my @l;
    while (my $l = <$fh>) {
        chomp $l;
        my $o = eval { decode_json($l) } or next;
        push @l, $o;
    }
    return @l;
}

# messages -- the commands received, in order: {channel, at, msg => the decoded command}.
sub messages($ag) { grep { $_->{msg} } $ag->lines }

# commands_of -- the received messages whose command id is ID.
sub commands_of($ag, $id) { grep { ($_->{msg}{id} // '') eq $id } $ag->messages }

sub DESTROY($ag) { $ag->kill if $ag->{owner} == $$ && $ag->{pid} }

# wait_online -- wait until the server's registry has this agent online (hbmon saw its heartbeat).
sub wait_online($ag, $s, $timeout = 20) {
    return CxTest::wait_until(sub {
        my $r = $s->sql('SELECT status FROM agents WHERE id = ?', $ag->{id});
        @$r && $r->[0]{status} eq 'online';
    }, $timeout, "agent $ag->{id} online");
}

# ---------------------------------------------------------------------------------------------------
# Helpers for the lifecycle tests

# %FAST -- agent and command timings for tests that must see timeouts and redeliveries quickly.
our %FAST = ('agents.heartbeat_timeout' => '3s', 'agents.monitor_interval' => '500ms',
    'commands.redeliver_interval' => '1s', 'commands.ttl' => '1m');

# server -- a started CxTest with %FAST timings; config keys override them, workers => N as for
# CxTest->new.
sub server(%o) {
    my $workers = delete $o{workers};
    my $s = CxTest->new(defined $workers ? (workers => $workers) : (), config => { %FAST, %o });
    $s->start;
    return $s;
}

# create_pipeline -- POST /pipelines; the Pipeline (croaks unless 201).
sub create_pipeline($s, $name, $yaml = undef) {
    $yaml //= "source:\n  type: kafka\n  topic: $name\nsink:\n  type: stdout\n";
    my $r = $s->auth_post('/api/v1/pipelines', { name => $name, description => "test $name", config_yaml => $yaml });
    croak "CxAgent: create pipeline $name: $r->{status} $r->{content}" unless $r->{status} == 201;
    return $r->{json}{data};
}

# sim -- start conduix-agent-sim (the build's) on the test Redis with ARGS, logging to a file of the
# instance's temp dir; waits for its ready line. Returns {h, log, name}; sim_lines($sim, EVENT) reads the
# log's lines of that event; sim_stop($sim) ends it (also at exit).
my @sims;
sub sim($s, $name, @args) {
    my $bin = "$CxTest::BUILDDIR/src/conduix-agent-sim";
    croak "CxAgent: no $bin (build it first)" unless -x $bin;
    my $log = $s->tmp . "/sim-$name.log";
    my $h = CxTest::run_cmd({ tmp => $s->tmp, background => 1 }, $bin, '-p', $CxTest::REDIS_PORT, '-i', '1s',
        '--metrics-interval', '1s', '--log', $log, '-q', @args);
    my $sim = { h => $h, log => $log, name => $name, owner => $$ };
    push @sims, $sim;
    CxTest::wait_until(sub { sim_lines($sim, 'ready') }, 20, "simulator $name ready") or croak "CxAgent: simulator $name did not start";
    return $sim;
}

sub sim_lines($sim, $event = 'command') {
    open(my $fh, '<', $sim->{log}) or return ();
    return grep { ($_->{event} // '') eq $event } map { eval { decode_json($_) } // () } <$fh>;
}

sub sim_stop($sim) {
    return unless $sim->{h} && $sim->{owner} == $$;
    CORE::kill 'TERM', $sim->{h}{pid};
    CxTest::finish_cmd($sim->{h}, 10);
    delete $sim->{h};
}

END { sim_stop($_) for @sims }

# run_status -- the status of the pipeline's latest run per GET /status (undef when it never ran).
sub run_status($s, $pid) {
    my $r = $s->auth_get("/api/v1/pipelines/$pid/status");
    return undef unless $r->{status} == 200 && $r->{json}{data}{run};
    return $r->{json}{data}{run}{status};
}

END { $_->kill for grep { $_->{owner} == $$ } @agents; unlink map { $_->{file} } grep { $_->{owner} == $$ } @agents }

# ---------------------------------------------------------------------------------------------------
# The agent process

sub connect_redis($ag) {
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ag->{port}, Proto => 'tcp', Timeout => 2);
}

sub resp(@cmd) { '*' . scalar(@cmd) . "\r\n" . join('', map { '$' . length($_) . "\r\n$_\r\n" } @cmd) }

# parse -- one RESP value from the front of $$buf, or undef when incomplete (the buffer is left alone).
sub parse($buf, $pos = 0) {
    my $i = index($$buf, "\r\n", $pos);
    return undef if $i < 0;
    my $t = substr($$buf, $pos, 1);
    my $line = substr($$buf, $pos + 1, $i - $pos - 1);
    my $next = $i + 2;
    if ($t eq '+' || $t eq '-' || $t eq ':') { return [$line, $next] }
    if ($t eq '$') {
        return [undef, $next] if $line < 0;
        return undef if length($$buf) < $next + $line + 2;
        return [substr($$buf, $next, $line), $next + $line + 2];
    }
    if ($t eq '*') {
        my @v;
        for (1 .. $line) {
            my $r = parse($buf, $next) // return undef;
            push @v, $r->[0];
            $next = $r->[1];
        }
        return [\@v, $next];
    }
    die "bad RESP type '$t'";
}

sub command($ag, @cmd) {
    for my $try (1, 2) {
        $ag->{cmd} //= $ag->connect_redis or return undef;
        my $ok = eval {
            print { $ag->{cmd} } resp(@cmd) or die "write\n";
            my $l = readline($ag->{cmd}) // die "eof\n";
            if ($l =~ /^\$(-?\d+)/ && $1 >= 0) { my $b; read($ag->{cmd}, $b, $1 + 2) }
            1;
        };
        return 1 if $ok;
        undef $ag->{cmd};
    }
    return undef;
}

sub log_line($ag, $o) {
    open(my $fh, '>>', $ag->{file}) or die "$ag->{file}: $!";
    print $fh $JSON->encode({ %$o, at => time }), "\n";
    close $fh;
}

sub now_rfc3339 { strftime('%Y-%m-%dT%H:%M:%SZ', gmtime) }

sub heartbeat($ag) {
    my @p = sort keys %{ $ag->{running} };
    my $beat = {
        agent_id => $ag->{id}, timestamp => now_rfc3339(), cpu_usage => 1.5, memory_usage => 20, disk_usage => 0,
        pipelines => \@p, hostname => "host-$ag->{id}", version => 'cxagent-test',
        pipeline_stats => [map { { pipeline_id => $_, status => $ag->{running}{$_}{status},
            processed_count => ++$ag->{running}{$_}{processed}, error_count => 0 } } @p],
    };
    $ag->command('SET', "agent:$ag->{id}:heartbeat", $JSON->encode($beat), 'EX', 30);
}

sub ack($ag, $cmd, $success, $error = undef) {
    my $r = { command_id => $cmd->{id}, agent_id => $ag->{id}, success => $success ? JSON::PP::true : JSON::PP::false,
        message => $success ? 'done' : 'refused', timestamp => now_rfc3339() };
    $r->{error} = $error if defined $error;
    $ag->command('PUBLISH', "agent:responses:$ag->{id}", $JSON->encode($r));
}

sub event($ag, $pid, $run_id, $status) {
    $ag->command('PUBLISH', 'pipeline:events', $JSON->encode({ type => 'run_status', agent_id => $ag->{id},
        pipeline_id => $pid, run_id => $run_id, status => $status, processed_count => 7, error_count => 0,
        timestamp => now_rfc3339() }));
}

sub handle($ag, $channel, $text) {
    my $m = eval { decode_json($text) };
    $ag->log_line({ channel => $channel, msg => $m, raw => defined $m ? undef : $text });
    return unless ref $m eq 'HASH';
    my $seen = $ag->{seen}{ $m->{id} }++;
    if (defined $ag->{remember}) {    # forget the oldest ids beyond the last N
        push @{ $ag->{order} }, $m->{id} unless $seen;
        delete $ag->{seen}{ shift @{ $ag->{order} } } while @{ $ag->{order} } > $ag->{remember};
    }
    my ($type, $pid) = ($m->{type} // '', $m->{pipeline_id} // '');
    my $run_id = ref $m->{payload} eq 'HASH' ? $m->{payload}{run_id} : undef;
    if (!$seen) {
        if ($type eq 'start_pipeline' && $ag->{ack} ne 'fail_start') {
            $ag->{running}{$pid} = { status => 'running', processed => 0, run_id => $run_id };
        } elsif ($type eq 'stop_pipeline' && !$ag->{stubborn}) {
            delete $ag->{running}{$pid};
        } elsif ($type eq 'pause_pipeline' && $ag->{running}{$pid}) {
            $ag->{running}{$pid}{status} = 'paused';
        } elsif ($type eq 'resume_pipeline' && $ag->{running}{$pid}) {
            $ag->{running}{$pid}{status} = 'running';
        }
    }
    if ($ag->{ack} eq 'all') {
        $ag->ack($m, !($ag->{stubborn} && $type eq 'stop_pipeline'), $ag->{stubborn} && $type eq 'stop_pipeline' ? 'will not stop' : undef);
    } elsif ($ag->{ack} eq 'fail_start') {
        $ag->ack($m, $type ne 'start_pipeline', $type eq 'start_pipeline' ? 'no such input plugin' : undef);
    }
    if ($ag->{events} && !$seen && $run_id) {
        my %st = (start_pipeline => 'running', stop_pipeline => 'stopped', pause_pipeline => 'paused',
            resume_pipeline => 'running');
        $ag->event($pid, $run_id, $st{$type}) if $st{$type};
    }
    $ag->heartbeat if $ag->{beat} && !$seen;    # report the change at once, as agents do
}

sub run($ag) {
    my ($sub, $buf, $next_beat) = (undef, '', 0);
    my $subscribed = 0;
    if (!$ag->{subscribe}) {
        $ag->log_line({ ready => 1 });
        while (1) {
            $ag->heartbeat if $ag->{beat};
            sleep($ag->{beat} || 1);
        }
    }
    while (1) {
        if (!$sub) {
            $sub = $ag->connect_redis;
            if ($sub) {
                print $sub resp('SUBSCRIBE', "agent:commands:$ag->{id}");
                $buf = '';
            } else {
                sleep 0.2;
            }
        }
        if ($ag->{beat} && time >= $next_beat) {
            $ag->heartbeat;
            $next_beat = time + $ag->{beat};
        }
        next unless $sub;
        my $sel = IO::Select->new($sub);
        next unless $sel->can_read(0.1);
        my $n = sysread($sub, $buf, 65536, length $buf);
        if (!$n) {
            undef $sub;
            next;
        }
        while (my $r = parse(\$buf)) {
            substr($buf, 0, $r->[1], '');
            my $v = $r->[0];
            next unless ref $v eq 'ARRAY';
            if ($v->[0] eq 'subscribe') {
                $ag->log_line({ ready => 1 }) unless $subscribed++;
            } elsif ($v->[0] eq 'message') {
                $ag->handle($v->[1], $v->[2]);
            }
        }
    }
}

# seed_schedules -- $n pipelines (names t-$tag-N) with one schedule each ('@every 1h', policy skip), due at
# the database second $at, written straight into the tables (a burst larger than the API would make
# quickly); the schedule ids, 00000000-0000-4000-9000-$tag followed by the number (the pipelines' are
# ...-8000-...), so that a test can select them with LIKE. $tag is one character.
sub seed_schedules($s, $tag, $n, $at) {
    my (@pv, @pb, @sv, @sb, @ids);
    for my $i (1 .. $n) {
        my $pid = sprintf('00000000-0000-4000-8000-%s%011d', $tag, $i);
        my $sid = sprintf('00000000-0000-4000-9000-%s%011d', $tag, $i);
        push @pv, "(?, ?, '', 'source:\n  type: kafka\n', 'test', NOW(3), NOW(3))";
        push @pb, $pid, "t-$tag-$i";
        push @sv, "(?, ?, '\@every 1h', 'UTC', 1, 'skip', FROM_UNIXTIME(?), 'test')";
        push @sb, $sid, $pid, $at;
        push @ids, $sid;
    }
    $s->sql('INSERT INTO pipelines (id, name, description, config_yaml, created_by, created_at, updated_at) VALUES ' . join(', ', @pv),
        @pb);
    $s->sql('INSERT INTO schedules (id, pipeline_id, cron_expression, timezone, enabled, overlap_policy, next_run_at, created_by) '
          . 'VALUES ' . join(', ', @sv), @sb);
    return @ids;
}

# ---- an agent that beats over REST only (POST /api/v1/agents/:id/heartbeat), in the test's own process ----
#
#   my $rest = CxAgent::Rest->new($s, 'agent-1', $token, sub { (pipelines => [@list]) });
#   $rest->beat;                                  # one beat, at most every 300 ms (a call sooner does nothing)
#   $rest->await(sub { ... }, 20, 'name');        # ok(wait_until(...)) with beats meanwhile
#   $rest->beat_for(3);                           # beats for 3 seconds
#
# The code ref gives the fields of each beat besides agent_id and timestamp (pipelines, pipeline_stats,
# cpu_usage, ...: cpu_usage 1 and memory_usage and disk_usage 0 unless it says otherwise). A beat the
# server refuses dies: the tests that use it are about what a valid beat does.
package CxAgent::Rest;

use v5.36;
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);

sub new($class, $s, $id, $token, $fields = sub { () }) {
    return bless { s => $s, id => $id, token => $token, fields => $fields, last => 0 }, $class;
}

sub beat($b) {
    return if time - $b->{last} < 0.3;
    $b->{last} = time;
    my $ts = strftime('%Y-%m-%dT%H:%M:%S', gmtime) . sprintf('.%03dZ', (time * 1000) % 1000);
    my $r = $b->{s}->post("/api/v1/agents/$b->{id}/heartbeat",
        { agent_id => $b->{id}, timestamp => $ts, cpu_usage => 1, memory_usage => 0, disk_usage => 0, $b->{fields}->() },
        token => $b->{token});
    die "heartbeat refused: $r->{status}" unless $r->{status} == 200;
}

sub await($b, $code, $timeout, $name) {
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return Test::More::ok(CxTest::wait_until(sub { $b->beat; $code->() }, $timeout, $name), $name);
}

sub beat_for($b, $seconds) {
    my $end = time + $seconds;
    while (time < $end) { $b->beat; sleep 0.05 }
}

1;
