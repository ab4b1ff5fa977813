/* ctl.h — plexusctl internals. */
#ifndef PLEXUS_CTL_H
#define PLEXUS_CTL_H
#endif
