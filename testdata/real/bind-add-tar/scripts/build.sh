echo "built with a bound script" > /built.txt
