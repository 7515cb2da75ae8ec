//! Integration tests and the seed scenarios of procshare.
