/* agents.h -- XXX filled by its issue. */
#ifndef CONDUIX_AGENTS_H
#define CONDUIX_AGENTS_H
#endif
