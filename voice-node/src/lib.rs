//! callgate's voice node (issue 4 builds it out).
