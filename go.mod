module github.com/pushbackhq/pushback

go 1.26

require github.com/pushbackhq/pushback/gen v0.0.0

replace github.com/pushbackhq/pushback/gen => ./gen
