//! TODO(owner): module under construction.
