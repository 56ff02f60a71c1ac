# CxLoad -- continuous load on a CxTest instance from forked clients, every request recorded, for the
# fault tests (t/8x-*.t) and the chaos suite (t/chaos/).
#
#   my $load = CxLoad->start($s, name => 'api', clients => 4, keep_alive => 1,
#       request => sub ($client, $n) { [GET => "/api/v1/pipelines/$id", token => $tok] });
#   ...                                   # faults happen here
#   my @r = $load->stop;                  # {client, t, dt, status, code} per request, by start time
#   my @during = CxLoad::between(\@r, $t0, $t1);
#
# Each client sends one request at a time, the next as soon as the previous one was answered (pause =>
# seconds adds a wait), until stop. A request is recorded with its start time t (Time::HiRes time, the
# same clock as the test's), its duration dt, the HTTP status (599 for a connection failure or a timeout
# of HTTP::Tiny, whose timeout is timeout => seconds, default 10) and the envelope's code, if any, and
# what note => sub ($response) returns (e.g. the id of the command created; no spaces). The request sub
# returns [METHOD, PATH, OPTIONS of CxTest::request] or undef to skip a turn; it may keep state of its
# own (each client is its own process), and after => sub ($client, $n, $response) sees each answer.
package CxLoad;

use v5.36;
use Carp qw(croak);
use HTTP::Tiny;
use IO::Handle;
use POSIX ();
use Time::HiRes qw(sleep time);

my $seq = 0;

sub start($class, $s, %o) {
    my $name = $o{name} // 'load' . ++$seq;
    my $dir = $s->tmp . "/load-$name";
    mkdir $dir;
    my $stop = "$dir/stop";
    unlink $stop;
    my $self = bless { s => $s, name => $name, dir => $dir, stop => $stop, kids => [] }, $class;
    for my $c (1 .. ($o{clients} // 1)) {
        my $pid = fork // croak "CxLoad: fork: $!";
        if (!$pid) {
            client($s, $c, "$dir/client-$c", $stop, \%o);
            POSIX::_exit(0);
        }
        push @{ $self->{kids} }, $pid;
    }
    return $self;
}

sub client($s, $c, $out, $stop, $o) {
    $SIG{TERM} = $SIG{INT} = 'DEFAULT';
    my $ua = HTTP::Tiny->new(timeout => $o->{timeout} // 10, keep_alive => $o->{keep_alive} // 1, agent => "cx-load/$c");
    open(my $fh, '>', $out) or POSIX::_exit(1);
    my $n = 0;
    until (-e $stop) {
        my $req = eval { $o->{request}->($c, $n++) };
        if (!$req) {
            sleep($o->{pause} // 0.05);
            next;
        }
        my ($method, $path, %ro) = @$req;
        my $t0 = time;
        my $r = eval { $s->request($method, $path, %ro, ua => $ua) } // { status => 599, json => {} };
        my $code = ref $r->{json} eq 'HASH' ? ($r->{json}{code} // '-') : '-';
        my $ra = $r->{headers}{'retry-after'} // '-';
        my $note = $o->{note} ? (eval { $o->{note}->($r) } // '-') : '-';
        $note =~ s/\s+/_/g;
        printf $fh "%.4f %.4f %d %s %s %s %s %s\n", $t0, time - $t0, $r->{status}, $code, $ra, $method, $path, $note;
        $fh->flush if $o->{flush};
        eval { $o->{after}->($c, $n, $r) } if $o->{after};
        sleep $o->{pause} if $o->{pause};
    }
    close $fh;
}

# stop -- end the clients (each finishes the request it is in) and return every request recorded.
sub stop($self) {
    return @{ $self->{records} } if $self->{records};
    if (open(my $fh, '>', $self->{stop})) { close $fh }
    waitpid($_, 0) for @{ $self->{kids} };
    my @r;
    for my $c (1 .. @{ $self->{kids} }) {
        open(my $in, '<', "$self->{dir}/client-$c") or next;
        while (my $line = <$in>) {
            my ($t, $dt, $status, $code, $ra, $method, $path, $note) = split ' ', $line;
            push @r, { client => $c, t => $t, dt => $dt, status => $status, code => $code, retry_after => $ra,
                method => $method, path => $path, note => $note };
        }
    }
    $self->{records} = [sort { $a->{t} <=> $b->{t} } @r];
    return @{ $self->{records} };
}

sub DESTROY($self) {
    return if $self->{records} || !$self->{kids};
    kill 'TERM', @{ $self->{kids} };
    waitpid($_, 0) for @{ $self->{kids} };
}

# between -- the records that started in [t0, t1).
sub between($r, $t0, $t1) { grep { $_->{t} >= $t0 && $_->{t} < $t1 } @$r }

# max_dt -- the longest duration of the records (0 for none).
sub max_dt(@r) {
    my $m = 0;
    for (@r) { $m = $_->{dt} if $_->{dt} > $m }
    return $m;
}

# by_status -- "200:123 503:4" for a diagnostic or a figure.
sub by_status(@r) {
    my %n;
    $n{ $_->{status} . ($_->{code} ne '-' ? " $_->{code}" : '') }++ for @r;
    return join(', ', map { "$_: $n{$_}" } sort keys %n) || 'none';
}

# first_ok_after -- per client, the start of its first answer with status ok at or after t; returns the
# latest of them (when every client was served again), or undef when a client never was.
sub first_ok_after($r, $t, $ok = sub ($x) { $x->{status} == 200 }) {
    my %first;
    my %clients = map { $_->{client} => 1 } @$r;
    for my $x (@$r) {
        next if $x->{t} < $t || exists $first{ $x->{client} } || !$ok->($x);
        $first{ $x->{client} } = $x->{t} + $x->{dt};
    }
    return undef if grep { !exists $first{$_} } keys %clients;
    my $m = 0;
    for (values %first) { $m = $_ if $_ > $m }
    return $m;
}

1;
