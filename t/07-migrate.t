# 07-migrate.t -- migrations: every table created, idempotent, a changed applied file refused, two
# concurrent runs on a fresh database apply each migration once; serve applies them on start.
use v5.36;
use Test::More;
use CxTest;
use File::Basename qw(basename);
use File::Copy qw(copy);
use Digest::SHA ();

my @files = sort glob("$CxTest::SRCDIR/migrations/*.sql");
ok(@files >= 1, 'migration files found: ' . join(' ', map { basename $_ } @files));

sub count_applied($s) {
    my $rows = eval { $s->sql('SELECT COUNT(*) AS n FROM schema_migrations') };
    diag "count_applied: $@" unless $rows;
    return $rows ? $rows->[0]{n} : undef;
}

my $s = CxTest->new(config => { 'migrations.auto' => 'false' });

my $r = $s->cli('migrate');
is($r->{exit}, 0, 'migrate exits 0 on an empty database') or diag "$r->{out}$r->{err}";
my %have = map { $_ => 1 } $s->tables;
for my $t (qw(pipelines pipeline_versions pipeline_runs schedules agents agent_commands users sessions audit_log
    schema_migrations)) {
    ok($have{$t}, "table $t exists");
}
my $n = count_applied($s);
is($n, scalar @files, 'schema_migrations has one row per migration file');
my $unique = eval {
    $s->sql(q{SELECT COUNT(*) AS n FROM information_schema.statistics
              WHERE table_schema = ? AND table_name = 'pipeline_runs' AND non_unique = 0
                AND column_name IN ('schedule_id', 'scheduled_for')}, $s->db_name)->[0]{n};
};
cmp_ok($unique // 0, '>=', 2, 'pipeline_runs has a unique key over (schedule_id, scheduled_for)');
my %keys = map { $_->{index_name} => 1 } @{ $s->sql(q{SELECT DISTINCT index_name FROM information_schema.statistics
    WHERE table_schema = ? AND table_name = 'agent_commands'}, $s->db_name) };
ok(!$keys{ix_commands_agent_status}, 'agent_commands: the redundant (agent_id, status) key is dropped (0008)');
ok($keys{ix_commands_status_agent_seq} && $keys{ix_commands_agent_pipeline_seq},
    'agent_commands: the keys that serve its reads by agent are there');

my %rkeys = map { $_->{index_name} => 1 } @{ $s->sql(q{SELECT DISTINCT index_name FROM information_schema.statistics
    WHERE table_schema = ? AND table_name = 'pipeline_runs'}, $s->db_name) };
ok(!$rkeys{ix_runs_status}, 'pipeline_runs: the status key is dropped (0010)');
ok($rkeys{uq_runs_active} && $rkeys{ix_runs_agent_status}, 'pipeline_runs: the keys that find active runs are there');
my %coll = map { ("$_->{t}.$_->{c}" => $_->{coll}) } @{ $s->sql(q{SELECT table_name AS t, column_name AS c,
    collation_name AS coll FROM information_schema.columns WHERE table_schema = ? AND collation_name IS NOT NULL}, $s->db_name) };
my @ids = qw(pipelines.id pipeline_versions.pipeline_id pipeline_runs.id pipeline_runs.pipeline_id pipeline_runs.schedule_id
    pipeline_runs.failover_of pipeline_runs.active_pipeline_id schedules.id schedules.pipeline_id schedules.last_run_id
    agent_commands.id agent_commands.pipeline_id agent_commands.run_id audit_log.target_id);
is_deeply([grep { ($coll{$_} // '') ne 'utf8mb4_bin' } @ids], [], 'the id columns are utf8mb4_bin, both sides of every join (0009)');
is($coll{'pipelines.name'}, 'utf8mb4_unicode_ci', 'free text keeps the tables\' collation');

$r = $s->cli('migrate');
is($r->{exit}, 0, 'migrate again exits 0') or diag "$r->{out}$r->{err}";
is(count_applied($s), $n, 'the second migrate applies nothing');

# The seed's form: conduix-cp --migrate --config FILE
$r = CxTest::run_cmd({ tmp => $s->tmp }, $CxTest::BIN, '--migrate', '--config', $s->config_file);
is($r->{exit}, 0, '--migrate --config FILE (the seed form) exits 0') or diag "$r->{out}$r->{err}";
is(count_applied($s), $n, 'and applies nothing more');

# An applied file that changed is refused, naming the file.
my $copy = $s->tmp . '/migrations';
mkdir $copy or die "$copy: $!";
copy($_, "$copy/" . basename($_)) or die "copy $_: $!" for @files;
my ($first) = sort glob("$copy/0001*.sql");
open(my $fh, '>>', $first) or die "$first: $!";
print $fh "\n-- changed after it was applied\n";
close $fh;
$s->set_config('migrations.dir' => $copy);
$s->write_config;
$r = $s->cli('migrate');
isnt($r->{exit}, 0, 'migrate refuses a changed applied file');
like($r->{out} . $r->{err}, qr/0001/, 'the error names the file') or diag "$r->{out}$r->{err}";
is(count_applied($s), $n, 'nothing recorded');

# serve with migrations.auto and the changed file: refuses to start.
$s->set_config('migrations.auto' => 'true');
$s->write_config;
$s->start(wait => 0);
my $st = $s->wait_exit(30);
ok(defined $st, 'serve with a changed applied migration exits by itself') or $s->stop;
isnt($s->exit_code // 0, 0, 'with a non-zero status');
like($s->log, qr/0001/, 'its log names the file') or diag $s->log_tail;

# Two migrate processes at once on a fresh database.
my $f = CxTest->new(config => { 'migrations.auto' => 'false' });
my @h = map { $f->cli('migrate', { background => 1 }) } 1, 2;
my @res = map { CxTest::finish_cmd($_, 60) } @h;
is($res[$_]->{exit}, 0, 'concurrent migrate ' . ($_ + 1) . ' exits 0') or diag "$res[$_]{out}$res[$_]{err}" for 0, 1;
is(count_applied($f), scalar @files, 'each migration recorded once');

# The migrations are built into the binary: without migrations.dir, migrate applies them (no data
# directory needed), and says where they came from.
{
    my $e = CxTest->new(config => { 'migrations.auto' => 'false', 'migrations.dir' => undef });
    my $r = $e->cli('migrate');
    is($r->{exit}, 0, 'migrate without migrations.dir exits 0') or diag "$r->{out}$r->{err}";
    is(count_applied($e), scalar @files, 'and applies every migration, from the copies in the binary');
    like($r->{err}, qr/migrations from the binary \(built in\)/, 'the log says they are the built-in ones');
    my %sum = map { $_->{name} => $_->{checksum} } @{ $e->sql('SELECT name, checksum FROM schema_migrations') };
    my %want = map { basename($_) => Digest::SHA::sha256_hex(CxTest::slurp($_)) } @files;
    is_deeply(\%sum, \%want, 'recorded with the checksums of the files in migrations/');
}

# The shipped configuration (conf/config.yaml) served from the build tree, with the environment giving
# the connections: the seed's own start. Only the pidfile is moved out of /run.
{
    my $e = CxTest->new;
    my ($text, $pf) = (CxTest::slurp("$CxTest::SRCDIR/conf/config.yaml"), $e->pidfile);
    $text =~ s{^(\s*pidfile:).*$}{$1 $pf}m;
    $e->write_config($text);
    my $port = CxTest::free_port();
    $e->start(env => { PORT => $port, DB_HOST => '127.0.0.1', DB_PORT => $CxTest::MYSQL_PORT, DB_USER => $CxTest::DB_USER,
        DB_PASSWORD => $CxTest::DB_PASSWORD, DB_NAME => $e->db_name, REDIS_HOST => '127.0.0.1',
        REDIS_PORT => $CxTest::REDIS_PORT, JWT_SECRET => $e->secret });
    wait_ok { ($e->get('/ready')->{status} // 0) == 200 } 30, 'serve -c conf/config.yaml: /ready 200';
    is(count_applied($e), scalar @files, 'the migrations were applied from the binary');
    unlike($e->log, qr/cannot open the migrations directory/, 'no migrations directory needed');
    is($e->stop, 0, 'stop exits 0');
}

# serve with migrations.auto on a fresh database creates the schema.
my $auto = CxTest->new;
$auto->start;
wait_ok { ($auto->get('/ready')->{status} // 0) == 200 } 30, 'serve with migrations.auto: /ready 200';
is(count_applied($auto), scalar @files, 'serve applied the migrations');
my %at = map { $_ => 1 } $auto->tables;
ok($at{pipelines} && $at{agent_commands}, 'serve created the tables');
is($auto->stop, 0, 'stop exits 0');

done_testing;
