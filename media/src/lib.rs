//! Media stages without IO.
