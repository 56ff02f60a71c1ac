/* src/redis/heartbeat.c -- XXX empty until its issue lands. */
typedef int cx_empty_unit_t;
