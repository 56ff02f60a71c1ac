/*
 * main.c -- argv to the chosen command; nothing else.
 */
#include <errno.h>
#include <getopt.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/config.h"
#include "conduix/ctl.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/log.h"
#include "conduix/proc.h"
#include "conduix/sdnotify.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: conduix-cp [serve] [-c FILE] [-F|--foreground] [-d|--daemon]\n"
                 "       conduix-cp migrate [-c FILE]\n"
                 "       conduix-cp reload [-c FILE]\n"
                 "       conduix-cp stop [-c FILE] [--graceful]\n"
                 "       conduix-cp status [-c FILE]\n"
                 "       conduix-cp check-config [-c FILE]\n"
                 "       conduix-cp token --role ROLE --sub ID [--email E] [--name N] [--ttl 24h] [-c FILE]\n"
                 "       conduix-cp version\n");
}

static const char *const verbs[] = {"serve", "migrate", "reload", "stop", "status", "check-config", "token", "version", "help"};

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"foreground", no_argument, NULL, 'F'},
                                         {"daemon", no_argument, NULL, 'd'},
                                         {"graceful", no_argument, NULL, 'g'},
                                         {"role", required_argument, NULL, 'r'},
                                         {"sub", required_argument, NULL, 's'},
                                         {"email", required_argument, NULL, 'e'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"ttl", required_argument, NULL, 't'},
                                         {"migrate", no_argument, NULL, 'm'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *verb = "serve", *cfg_path = NULL, *role = NULL, *sub = NULL, *email = NULL, *name = NULL, *ttl = NULL;
    int daemon_mode = 0, graceful = 0, c, rc;
    char err[1024];
    cx_config_t *cfg;
    size_t i;

    cx_proc_title_init(argc, argv);
    if (argc > 1 && argv[1][0] != '-') {
        for (i = 0; i < CX_ARRAY_SIZE(verbs); i++)
            if (strcmp(argv[1], verbs[i]) == 0)
                break;
        if (i == CX_ARRAY_SIZE(verbs)) {
            fprintf(stderr, "conduix-cp: unknown command \"%s\"\n", argv[1]);
            usage(stderr);
            return 1;
        }
        verb = argv[1];
        argv[1] = argv[0];
        argv++;
        argc--;
    }
    while ((c = getopt_long(argc, argv, "c:Fdh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cfg_path = optarg;
            break;
        case 'F':
            daemon_mode = 0;
            break;
        case 'd':
            daemon_mode = 1;
            break;
        case 'g':
            graceful = 1;
            break;
        case 'r':
            role = optarg;
            break;
        case 's':
            sub = optarg;
            break;
        case 'e':
            email = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 't':
            ttl = optarg;
            break;
        case 'm':
            verb = "migrate";
            break;
        case 'V':
            verb = "version";
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "conduix-cp: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 1;
    }
    if (strcmp(verb, "version") == 0) {
        printf("conduix-cp %s\n", CX_VERSION);
        return 0;
    }
    if (strcmp(verb, "help") == 0) {
        usage(stdout);
        return 0;
    }

    /* status, stop and reload only need the pidfile: they work without the JWT secret */
    cfg = cx_config_load_flags(
        cfg_path,
        CX_CONFIG_ENV |
            (strcmp(verb, "status") == 0 || strcmp(verb, "stop") == 0 || strcmp(verb, "reload") == 0 ? CX_CONFIG_NO_SECRET : 0),
        err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "conduix-cp: %s\n", err);
        return 1;
    }
    cx_cfg = cfg;
    if (strcmp(verb, "check-config") == 0) {
        printf("configuration OK%s%s\n", cfg->path ? ": " : "", cfg->path ? cfg->path : "");
        return 0;
    }
    if (strcmp(verb, "token") == 0)
        return cx_ctl_token(cfg, role, sub, email, name, ttl);
    if (strcmp(verb, "status") == 0)
        return cx_ctl_status(cfg);
    if (strcmp(verb, "reload") == 0 || strcmp(verb, "stop") == 0)
        return cx_ctl_signal(cfg, verb, graceful);

    if (cx_log_init(cfg->logging.level, cfg->logging.format, cfg->logging.file) != 0) {
        fprintf(stderr, "conduix-cp: logging.file %s: cannot open for writing\n", cfg->logging.file);
        return 1;
    }
    if (mysql_library_init(0, NULL, NULL) != 0) {
        fprintf(stderr, "conduix-cp: cannot initialise the MySQL client library\n");
        return 1;
    }
    if (strcmp(verb, "migrate") == 0) {
        cx_log_set_proc("migrate");
        rc = cx_migrate_run(cfg, cfg->migrations.dir, 1) == CX_OK ? 0 : 1;
    } else {
        rc = cx_master_run(cfg_path, daemon_mode);
        /* a service manager waiting for READY=1 (start-stop-daemon --notify-await) learns of the failure now,
         * not at its timeout; the reason is in the log */
        if (rc != 0) {
            char msg[64];
            snprintf(msg, sizeof(msg), "STATUS=failed, see the log\nERRNO=%d", ECANCELED);
            cx_sd_notify(msg);
        }
    }
    mysql_library_end();
    return rc;
}
