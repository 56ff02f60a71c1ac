/* commands.h -- XXX filled by its issue. */
#ifndef CONDUIX_COMMANDS_H
#define CONDUIX_COMMANDS_H
#endif
