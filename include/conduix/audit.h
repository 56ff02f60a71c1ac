/* audit.h -- XXX filled by its issue. */
#ifndef CONDUIX_AUDIT_H
#define CONDUIX_AUDIT_H
#endif
