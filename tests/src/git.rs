//! Temporary bare Git repositories served over git daemon and smart HTTP.
