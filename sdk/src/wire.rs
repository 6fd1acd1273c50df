//! Conversions between the model and the goalstore.v1 wire messages (todo).
