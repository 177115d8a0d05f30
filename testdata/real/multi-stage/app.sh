echo "built in the build stage"
