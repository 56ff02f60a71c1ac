# 16-layers.t -- the layers do not leak, checked on what the built objects call (nm): the HTTP core
# calls neither the authorizer nor the handlers (they are given to it), the data layer builds no answer
# and calls neither Redis nor the services above it, the Redis layer never calls the data layer, the run
# service writes no reply, and the JSON shapes depend on no I/O. Each rule names the files whose
# symbols a group of objects must not use; a new file in a directory falls under its rule.
use v5.36;
use Test::More;
use File::Basename qw(basename dirname);

my $build = $ENV{CX_BUILDDIR} // 'build';
my $src = "$build/src";
ok(-f "$src/http/server.o", "the built objects are in $src") or BAIL_OUT("no objects to check in $src");

# The objects of libcx by layer name: "http" for src/http/*.o, "runs" for src/runs.o, and so on.
my (%defined_in, %undef_of);
for my $o (glob("$src/*.o"), glob("$src/*/*.o")) {
    next if $o =~ m{/agent-sim/|/main\.o$};
    my $dir = basename(dirname($o));
    my $layer = $dir eq 'src' ? basename($o, '.o') : $dir;
    my $unit = $dir eq 'src' ? basename($o) : "$dir/" . basename($o);
    $undef_of{$unit} = { layer => $layer, syms => {} };
    for my $line (split /\n/, `nm $o`) {
        if ($line =~ /^\s+U (cx_\w+)$/) {
            $undef_of{$unit}{syms}{$1} = 1;
        } elsif ($line =~ /^[0-9a-f]+ [TDBRC] (cx_\w+)$/) {
            $defined_in{$1} = { layer => $layer, unit => $unit };
        }
    }
}
ok(scalar(keys %undef_of) > 30, 'the objects were read (' . scalar(keys %undef_of) . ')');

# uses -- the units of the forbidden layers whose symbols the objects of layer use, as "sym (unit)".
sub uses($layer, @forbidden) {
    my %bad = map { $_ => 1 } @forbidden;
    my @found;
    for my $unit (sort keys %undef_of) {
        next unless $undef_of{$unit}{layer} eq $layer;
        for my $sym (sort keys %{ $undef_of{$unit}{syms} }) {
            my $d = $defined_in{$sym} or next;
            push @found, "$unit calls $sym ($d->{unit})" if $bad{ $d->{layer} };
        }
    }
    return \@found;
}

my @services = qw(runs schedules hbmon dispatcher scheduler worker master heartbeat);
is_deeply(uses('http', qw(auth api db redis), @services), [], 'http/ calls neither auth/, api/, db/, redis/ nor a service');
is_deeply(uses('db', qw(http api auth redis), @services), [], 'db/ calls no answer (http/), no handler, no Redis, no service');
is_deeply(uses('redis', qw(db http api auth), @services), [], 'redis/ calls neither db/, http/, api/ nor a service');
is_deeply(uses('runs', qw(http api auth)), [], 'the run service writes no reply and calls no handler');
is_deeply(uses('heartbeat', qw(http api auth)), [], 'the heartbeat service writes no reply');
is_deeply(uses('schedules', qw(http api auth scheduler)), [], 'the schedule service writes no reply and calls no handler');
is_deeply(uses('scheduler', qw(http api auth)), [], 'the scheduler calls no handler');
is_deeply(uses('hbmon', qw(http api auth)), [], 'hbmon calls no handler');
is_deeply(uses('shapes', qw(db redis http api auth), @services), [], 'the JSON shapes call no I/O');
is_deeply(uses('states', qw(db redis http api auth shapes), @services), [], 'the states call nothing');
# auth/ holds the sign-in and the revocation services besides the token check: they keep their state in the
# data layer (sign-ins in flight, users, sessions), like the run service does, but answer no request.
is_deeply(uses('auth', qw(api), @services), [], 'auth/ calls no handler and no other service');

# hbmon's Redis reads go through redis/ (no hiredis call of its own).
my @hiredis = grep { /^(redis|freeReplyObject)/ } map { /^\s+U (\w+)$/ ? $1 : () } split /\n/, `nm $src/hbmon.o`;
is_deeply(\@hiredis, [], 'hbmon.c calls no hiredis function');

done_testing;
