"""The networks of the courses: the fully connected net and the three-layer convolutional net."""
