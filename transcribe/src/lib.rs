//! Recording -> transcript -> summary. The pipeline lands with the recording issue; this crate only reserves its place in the workspace.
