/* src/db/agents.c -- XXX empty until its issue lands. */
typedef int cx_empty_unit_t;
