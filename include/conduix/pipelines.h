/* pipelines.h -- XXX filled by its issue. */
#ifndef CONDUIX_PIPELINES_H
#define CONDUIX_PIPELINES_H
#endif
