// The ancillary-data macros of cmsg(3), which Swift cannot import (they are function-like
// macros), as one-line inline functions. No logic lives here.
#ifndef SWITCHYARD_CMSG_H
#define SWITCHYARD_CMSG_H

#include <sys/types.h>
#include <sys/socket.h>

static inline size_t swy_cmsg_space(size_t data_length) { return CMSG_SPACE(data_length); }
static inline size_t swy_cmsg_len(size_t data_length) { return CMSG_LEN(data_length); }
static inline struct cmsghdr *swy_cmsg_firsthdr(struct msghdr *message) { return CMSG_FIRSTHDR(message); }
static inline struct cmsghdr *swy_cmsg_nxthdr(struct msghdr *message, struct cmsghdr *header) {
    return CMSG_NXTHDR(message, header);
}
static inline unsigned char *swy_cmsg_data(struct cmsghdr *header) { return CMSG_DATA(header); }

#endif
